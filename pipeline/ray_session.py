"""Connecting to Ray: a named cluster, or an embedded local one — never a silent attach."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from synthmix.pipeline.config import RayConfig

# Our package travels with the job when it runs on a cluster whose image may not have it: one
# folder, synthmix/, whose subpackages in a checkout are links Ray's upload follows.
CODE_PACKAGES = ("synthmix",)


def resolve_address(config: RayConfig, override: str | None) -> str | None:
    """--address, then the job's ray.address, then RAY_ADDRESS; None means embedded local Ray."""
    return override or config.address or os.environ.get("RAY_ADDRESS") or None


def connect(config: RayConfig, override: str | None = None, log=print) -> str:
    """Start or join Ray once per process; returns a description for the log."""
    import ray
    from ray.data import DataContext

    if ray.is_initialized():
        return "already connected"
    # Ray's driver start-up takes SIGTERM over (a Python handler, then its C++ core's, which
    # aborts the process): keep the handlers the process had set up itself (the CLI's stop).
    own_handlers = {signum: handler for signum in (signal.SIGTERM, signal.SIGHUP) if callable(handler := signal.getsignal(signum))}
    address = resolve_address(config, override)
    if address:
        import importlib

        # Folders, not module objects: inside a submitted job Ray merges this runtime env with the
        # job's by deep copy, which module objects do not survive.
        modules = [str(Path(importlib.import_module(name).__path__[0])) for name in CODE_PACKAGES]
        ray.init(address=address, runtime_env={"py_modules": modules}, log_to_driver=True)
        description = f"Ray cluster at {address}"
    else:
        ray.init(address="local", num_cpus=config.num_cpus, include_dashboard=False, log_to_driver=False)
        description = f"embedded local Ray ({int(ray.cluster_resources().get('CPU', 0))} CPUs)"
    if threading.current_thread() is threading.main_thread():
        for signum, handler in own_handlers.items():
            signal.signal(signum, handler)
    # Our own progress lines replace Ray Data's bars, which garble logs of batch jobs.
    DataContext.get_current().enable_progress_bars = False
    log(f"connected: {description}")
    return description
