"""Shared fixtures: one embedded Ray session for the whole test run (start-up costs 5-8 s).

Per-test time limits (pytest-timeout): `timeout` in pyproject.toml for every test, and the longer
`engine_timeout` / `e2e_timeout` there for tests marked engine / e2e, unless a test sets its own.
"""

import os

import pytest

MARKER_TIMEOUTS = (("e2e", "e2e_timeout"), ("engine", "engine_timeout"))


def pytest_addoption(parser):
    for marker, option in MARKER_TIMEOUTS:
        parser.addini(option, f"seconds a test marked {marker} may run (pytest-timeout)", default="0")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("timeout") is not None:
            continue
        for marker, option in MARKER_TIMEOUTS:
            seconds = float(config.getini(option))
            if item.get_closest_marker(marker) is not None and seconds > 0:
                item.add_marker(pytest.mark.timeout(seconds))
                break


@pytest.fixture(scope="session")
def ray_session():
    """An embedded local Ray with 2 CPUs, never attaching to another cluster on the machine."""
    import ray

    if not ray.is_initialized():
        os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
