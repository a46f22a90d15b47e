"""What a test needs of the machine that a container may lack: without it the test fails, unless
SYNTHMIX_TEST_CONTAINER_LACKS names it (comma-separated); then the test is skipped, saying so.

A missing package or file is never such a thing: scripts/test.sh installs what the suite needs.
These are kernel permissions a container runtime can withhold:
- `namespaces`: creating mount, PID and user namespaces (bubblewrap's sandbox for verify_code);
  Docker's default seccomp profile refuses them.
- `network_namespace`: unshare(CLONE_NEWNET), as root or inside a new user namespace.
- `tmpfs_mount`: mounting a tmpfs (root in a privileged container).
"""

import os

import pytest

LACKS_ENV = "SYNTHMIX_TEST_CONTAINER_LACKS"
FEATURES = ("namespaces", "network_namespace", "tmpfs_mount")


def declared_lacking() -> set[str]:
    return {name.strip() for name in os.environ.get(LACKS_ENV, "").split(",") if name.strip()}


def missing_feature(feature: str, why: str) -> None:
    """Fail the calling test for lack of `feature`, or skip it where the container declares the lack."""
    assert feature in FEATURES, f"unknown feature {feature!r}; known: {FEATURES}"
    if feature in declared_lacking():
        pytest.skip(f"{why}; {LACKS_ENV} declares that this container lacks {feature}")
    pytest.fail(f"{why}; if this container truly lacks it, set {LACKS_ENV}={feature} to skip the tests that need it", pytrace=False)
