"""A real multi-node Ray cluster on 127.0.0.1 for tests: a head and a worker, each its own `ray start`.

Other Ray clusters run on this machine (other test sessions, other users), so every port is
chosen free here, every process keeps its files under the cluster's own `--temp-dir`, and
`stop()` ends only processes whose command line names that directory (and their children) —
never `ray stop`, which would end every Ray on the machine.

Token authentication is on, as Ray starts by default: the token lives in the temp dir and the
cluster's processes find it through RAY_AUTH_TOKEN_PATH. `client_env()` gives a client the
token file but not RAY_AUTH_MODE, as a user's shell would be.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import psutil

VENV_BIN = Path(sys.executable).parent
START_TIMEOUT_S = 180
WORKER_PORTS = 40


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_ports(count: int) -> list[int]:
    """Ports free right now, held open together so none is handed out twice."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


class LoopbackCluster:
    def __init__(self, temp_dir: Path, worker_nodes: int = 1, cpus_per_node: int = 1) -> None:
        self.temp_dir = temp_dir
        self.token_path = temp_dir / "auth_token"
        self.worker_nodes = worker_nodes
        self.cpus_per_node = cpus_per_node
        self.gcs_port, self.dashboard_port, self.client_port = free_ports(3)
        # Every port this cluster was given: a node's worker port range must hold none of them.
        self.taken = {self.gcs_port, self.dashboard_port, self.client_port}

    @property
    def gcs_address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def cluster_env(self) -> dict[str, str]:
        """What the cluster's processes (and drivers that join it with ray.init) run with."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"  # job drivers run `python`
        env["RAY_AUTH_MODE"] = "token"
        env["RAY_AUTH_TOKEN_PATH"] = str(self.token_path)
        env["RAY_DATA_DISABLE_PROGRESS_BARS"] = "1"
        env.pop("PYTHONPATH", None)  # code reaches the cluster only through runtime environments
        return env

    def client_env(self) -> dict[str, str]:
        """A client shell: the token on disk, RAY_AUTH_MODE unset."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
        env["RAY_AUTH_TOKEN_PATH"] = str(self.token_path)
        return env

    def start(self) -> LoopbackCluster:
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        self.token_path.write_text(secrets.token_hex(32))
        self._ray_start(["--head", "--port", str(self.gcs_port), "--dashboard-port", str(self.dashboard_port),
                         "--dashboard-host", "127.0.0.1", "--include-dashboard", "true",
                         "--ray-client-server-port", str(self.client_port)])  # fmt: skip
        for _ in range(self.worker_nodes):
            self._ray_start(["--address", self.gcs_address])
        self._wait_for_nodes()
        return self

    def _ray_start(self, role: list[str]) -> None:
        agent, agent_grpc, metrics, runtime_env, node_manager, object_manager = free_ports(6)
        self.taken |= {agent, agent_grpc, metrics, runtime_env, node_manager, object_manager}
        worker_low = self._free_worker_range()
        command = [
            str(VENV_BIN / "ray"), "start", *role, "--num-cpus", str(self.cpus_per_node),
            "--node-ip-address", "127.0.0.1", "--temp-dir", str(self.temp_dir),
            "--dashboard-agent-listen-port", str(agent), "--dashboard-agent-grpc-port", str(agent_grpc),
            "--metrics-export-port", str(metrics), "--runtime-env-agent-port", str(runtime_env),
            "--node-manager-port", str(node_manager), "--object-manager-port", str(object_manager),
            "--min-worker-port", str(worker_low), "--max-worker-port", str(min(worker_low + WORKER_PORTS, 65535)),
            "--disable-usage-stats",
        ]  # fmt: skip
        result = subprocess.run(command, env=self.cluster_env(), capture_output=True, text=True, timeout=START_TIMEOUT_S)
        if result.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start {' '.join(role)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")

    def _free_worker_range(self) -> int:
        """The start of WORKER_PORTS ports, all free now and none given to this cluster before: a
        worker port landing on a node's agent port made `ray start` fail now and then."""
        for _ in range(100):
            (low,) = free_ports(1)
            span = range(low, min(low + WORKER_PORTS, 65535) + 1)
            if self.taken.isdisjoint(span) and all(_is_free(port) for port in span):
                self.taken |= set(span)
                return low
        raise RuntimeError(f"no {WORKER_PORTS} free consecutive ports for Ray workers on 127.0.0.1")

    def _wait_for_nodes(self) -> None:
        """Wait until every node's raylet is up (the worker registers a little after `ray start`)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(self.processes(name="raylet")) < 1 + self.worker_nodes:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(self.processes(name='raylet'))} raylets up after {START_TIMEOUT_S} s")
            time.sleep(0.5)

    def processes(self, name: str | None = None) -> list[psutil.Process]:
        """This cluster's processes: their command line names its temp dir."""
        found = []
        marker = str(self.temp_dir)
        for process in psutil.process_iter(["cmdline", "name"]):
            cmdline = " ".join(process.info["cmdline"] or [])
            if marker in cmdline and (name is None or process.info["name"] == name):
                found.append(process)
        return found

    def stop(self) -> None:
        """End this cluster's processes and their children, nothing else."""
        victims: dict[int, psutil.Process] = {}
        for process in self.processes():
            try:
                victims[process.pid] = process
                victims.update({child.pid: child for child in process.children(recursive=True)})
            except psutil.NoSuchProcess:
                continue
        victims.pop(os.getpid(), None)
        for process in victims.values():
            try:
                process.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs(list(victims.values()), timeout=10)
