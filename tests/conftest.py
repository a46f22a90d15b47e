"""Shared fixtures: one embedded Ray session for the whole test run (start-up costs 5-8 s)."""

import os

import pytest


@pytest.fixture(scope="session")
def ray_session():
    """An embedded local Ray with 2 CPUs, never attaching to another cluster on the machine."""
    import ray

    if not ray.is_initialized():
        os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
