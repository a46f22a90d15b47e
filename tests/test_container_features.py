"""A test that needs what a container may lack fails without it, unless the container declares the lack."""

import pytest

from tests.container_features import LACKS_ENV, missing_feature


def test_a_missing_feature_fails_the_test_naming_the_variable(monkeypatch):
    monkeypatch.delenv(LACKS_ENV, raising=False)
    with pytest.raises(pytest.fail.Exception, match=f"set {LACKS_ENV}=tmpfs_mount"):
        missing_feature("tmpfs_mount", "mounting a tmpfs failed")


def test_a_feature_the_container_declares_missing_skips_saying_so(monkeypatch):
    monkeypatch.setenv(LACKS_ENV, "namespaces, tmpfs_mount")
    with pytest.raises(pytest.skip.Exception, match=f"{LACKS_ENV} declares that this container lacks tmpfs_mount"):
        missing_feature("tmpfs_mount", "mounting a tmpfs failed")
    monkeypatch.setenv(LACKS_ENV, "namespaces")
    with pytest.raises(pytest.fail.Exception):
        missing_feature("tmpfs_mount", "mounting a tmpfs failed")
