"""Submitting a job to a Ray cluster through the Ray Jobs API, and following it afterwards.

    synthmix submit JOB --address http://HEAD:8265 --run-dir /shared/runs/x [--wait]
    synthmix jobs status|logs|stop ID --address http://HEAD:8265

The project folder travels as the job's `working_dir` (our packages and the job file, which
must live inside it so its relative paths keep working); the cluster runs
`python -m synthmix run JOB --run-dir DIR ...` as the job's driver, which joins the
cluster through the `RAY_ADDRESS` the job supervisor sets.

Token authentication (on by default since Ray 2.52): the token is read where Ray itself
looks — `RAY_AUTH_TOKEN`, the file named by `RAY_AUTH_TOKEN_PATH`, then `~/.ray/auth_token` —
and sent as a bearer header whether or not `RAY_AUTH_MODE` is set in this shell.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from synthmix.pipeline.config import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # pipeline/cli/submit.py -> the project folder
# What never travels: environments, outputs, caches. Ray also skips what .gitignore lists.
WORKING_DIR_EXCLUDES = [".venv/", ".git/", "runs/", "**/__pycache__/", "*.egg-info/", ".pytest_cache/"]
TOKEN_HELP = (
    "copy the head node's token (print it there with `ray get-auth-token`, or read ~/.ray/auth_token; on KubeRay "
    "it is the cluster's auth Secret) into ~/.ray/auth_token on this machine, or export RAY_AUTH_TOKEN=<token> "
    "(or RAY_AUTH_TOKEN_PATH=<file>)"
)
# Terminal states of a Ray job, and the exit status `--wait` gives for each.
EXIT_STATUS = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": 1}


class SubmitError(RuntimeError):
    """The job could not be submitted to, or followed on, the cluster."""


@dataclass
class Submission:
    """What to run on the cluster: the `synthmix run` arguments and the runtime environment."""

    job_file: Path
    run_dir: str
    overrides: list[str] = field(default_factory=list)
    start: str | None = None
    only: str | None = None
    stop: str | None = None
    force: bool = False
    pip: list[str] = field(default_factory=list)
    env_vars: dict[str, str] = field(default_factory=dict)


def parse_env_vars(pairs: list[str]) -> dict[str, str]:
    """`--env K=V` pairs as a mapping; a pair without `=` is a usage error."""
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--env {pair!r} is not KEY=VALUE; write e.g. --env HF_HOME=/shared/hf")
        env[key] = value
    return env


def job_path_in_project(job_file: Path, root: Path = PROJECT_ROOT) -> Path:
    """The job file's path relative to the project root, which is what travels to the cluster."""
    resolved = job_file.resolve()
    try:
        return resolved.relative_to(root)
    except ValueError:
        raise ConfigError(
            f"job file {resolved} is outside the project folder {root}, which is what travels to the cluster; "
            f"move it under {root / 'jobs'} (with the files it names by relative path)"
        ) from None


def cluster_run_dir(run_dir: str | None, job_name: str) -> str:
    """The run directory as every node sees it: an absolute path, or an s3:// prefix."""
    if run_dir is not None and run_dir.startswith("s3://"):
        return run_dir
    if run_dir is None or not Path(run_dir).is_absolute():
        shown = run_dir or f"runs/{job_name}"
        raise ConfigError(
            f"run directory {shown!r} is relative: on the cluster it would land in the job's temporary working "
            f"directory and vanish with it; pass --run-dir /shared/runs/{job_name} (storage every node reaches)"
        )
    return run_dir


def build_entrypoint(submission: Submission, job_path: Path) -> str:
    """The shell command the cluster runs as the job's driver."""
    command = ["python", "-m", "synthmix", "run", job_path.as_posix(), "--run-dir", submission.run_dir]
    for override in submission.overrides:
        command += ["--set", override]
    for flag, value in (("--from", submission.start), ("--only", submission.only), ("--to", submission.stop)):
        if value:
            command += [flag, value]
    if submission.force:
        command.append("--force")
    return shlex.join(command)


def build_runtime_env(submission: Submission, root: Path = PROJECT_ROOT) -> dict:
    """Working dir = the project (code, prompts, job files); pip packages and env vars on top."""
    runtime_env: dict = {"working_dir": str(root), "excludes": list(WORKING_DIR_EXCLUDES)}
    if submission.pip:
        runtime_env["pip"] = list(submission.pip)
    if submission.env_vars:
        runtime_env["env_vars"] = dict(submission.env_vars)
    return runtime_env


def dashboard_url(address: str | None) -> str:
    """--address, else RAY_API_SERVER_ADDRESS or RAY_ADDRESS, as an http(s) URL of the dashboard."""
    address = address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
    if not address:
        raise ConfigError("no cluster named: pass --address http://HEAD:8265 (the Ray dashboard) or set RAY_API_SERVER_ADDRESS")
    if address.startswith("ray://") or address.rsplit(":", 1)[-1] in ("6379", "10001"):
        raise ConfigError(
            f"--address {address} looks like a GCS or Ray Client address; the Jobs API listens on the dashboard port: pass --address http://HEAD:8265"
        )
    return address if "://" in address else f"http://{address}"


def auth_headers() -> dict[str, str]:
    """A bearer header with the token Ray would use here, or none when there is no token."""
    from ray._raylet import AuthenticationTokenLoader

    loader = AuthenticationTokenLoader.instance()
    loader.reset_cache()  # the environment may have changed since Ray first looked
    if not loader.has_token(ignore_auth_mode=True):
        return {}
    return {"Authorization": f"Bearer {loader.get_raw_token(ignore_auth_mode=True)}"}


def connect_client(address: str | None):
    """A `JobSubmissionClient` for the cluster, with its token; errors say what to fix."""
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    url = dashboard_url(address)
    headers = auth_headers()
    try:
        return JobSubmissionClient(url, headers=headers)
    except AuthenticationError as error:
        raise SubmitError(describe_auth_failure(url, bool(headers), error)) from None
    except ConnectionError as error:
        raise SubmitError(
            f"cannot reach the Ray dashboard at {url} ({error}); check the head's address and that its dashboard "
            "port (8265 by default, `ray start --dashboard-port`) is reachable from here"
        ) from None


def describe_auth_failure(url: str, sent_token: bool, error: Exception) -> str:
    if not sent_token:
        return f"the cluster at {url} requires an authentication token and none was found here; {TOKEN_HELP}"
    # Ray's own message runs to a paragraph; its first line says which failure it was.
    reason = str(error).strip().splitlines()[0]
    return f"the cluster at {url} refused this machine's authentication token ({reason}); {TOKEN_HELP}"


def _guarded(call, url: str):
    """Run a Jobs API call, turning authentication and lookup failures into `SubmitError`."""
    from ray.exceptions import AuthenticationError

    try:
        return call()
    except AuthenticationError as error:
        raise SubmitError(describe_auth_failure(url, bool(auth_headers()), error)) from None
    except RuntimeError as error:
        if "does not exist" in str(error) or "404" in str(error):
            raise SubmitError(f"no job with that id on {url}: {error}; list jobs with `ray list jobs --address {url}`") from None
        raise


def submit(client, submission: Submission) -> str:
    """Submit the job; returns its submission id."""
    job_path = job_path_in_project(submission.job_file)
    return _guarded(
        lambda: client.submit_job(
            entrypoint=build_entrypoint(submission, job_path),
            runtime_env=build_runtime_env(submission),
            metadata={"synthmix_job": job_path.as_posix(), "run_dir": submission.run_dir},
        ),
        client.get_address(),
    )


def follow(client, job_id: str, out: TextIO = sys.stdout) -> str:
    """Stream the job's logs until it ends; returns its final status (SUCCEEDED, FAILED, STOPPED)."""

    async def stream() -> None:
        async for lines in client.tail_job_logs(job_id):
            out.write(lines)
            out.flush()

    _guarded(lambda: asyncio.run(stream()), client.get_address())
    return job_status(client, job_id)


def job_status(client, job_id: str) -> str:
    return str(_guarded(lambda: client.get_job_status(job_id), client.get_address()).value)


def job_logs(client, job_id: str) -> str:
    return _guarded(lambda: client.get_job_logs(job_id), client.get_address())


def stop(client, job_id: str) -> bool:
    """Ask the job to stop (SIGTERM, then SIGKILL); committed work stays for a rerun."""
    return _guarded(lambda: client.stop_job(job_id), client.get_address())
