"""Run untrusted Python code and its tests in a sandbox, and say how it went.

Each run gets its own process (the interpreter's base installation, not a virtual environment,
as `python -I -B -u`, in a session and process group of its own), a fresh temporary directory as
its working directory, HOME and TMPDIR, a minimal environment, stdin from /dev/null, and is
deleted afterwards. The child (`quality/sandbox_child.py`) confines itself before the program
runs. What holds it, and by what:

Enforced by the kernel
- The file system (`filesystem: isolated`, the default): the run starts inside bubblewrap
  (`bwrap`, Debian's `bubblewrap`), in mount, PID, IPC, UTS, network and (where it can) user
  namespaces of its own, with every capability dropped. Its root is empty but for: its working
  directory (as /sandbox, the one writable place), the interpreter's binary, standard library and
  shared library (read-only; its site-packages hidden under empty folders), the system's shared
  libraries (/usr/lib*, read-only), /usr/share/zoneinfo, and fresh /proc and /dev. Home
  folders, /tmp (Ray's session and its token), /etc, run directories and every other file of the
  machine are not there to read. Without bwrap the run fails with SandboxError, saying how to
  install it; `filesystem: host` runs on the host's file system instead, where only the guard
  stops reads (a Python program that gets past it can read whatever the user can).
- CPU time (RLIMIT_CPU): SIGXCPU at `cpu_seconds`, SIGKILL a second later -> `timeout`.
- Address space (RLIMIT_AS): allocations past `memory_mb` fail; Python raises MemoryError -> `crashed`.
- File size (RLIMIT_FSIZE): no file grows past `file_mb`; the write fails with EFBIG -> `sandbox_violation`.
- Open files (RLIMIT_NOFILE) and core dumps (RLIMIT_CORE = 0).
- Processes (RLIMIT_NPROC, set to the user's current count plus `processes`): only for a
  non-root user. The kernel never applies RLIMIT_NPROC to root (checked here: as root, five
  forks under a limit of one all succeed), so as root only the guard stops a fork bomb.
- Network: inside bubblewrap's network namespace nothing exists but the sandbox's own loopback,
  where nothing listens (127.0.0.1 refuses connections). On the host's file system the child
  enters a network namespace of its own (unshare CLONE_NEWNET as root or with CAP_SYS_ADMIN, else
  inside a new user namespace), whose loopback is down: even 127.0.0.1 is unreachable; where
  neither works (user namespaces switched off, a seccomp profile), `SandboxResult.network` says
  "none" and only the guard stands between the program and the network.
- Wall clock (the parent): past `wall_seconds` the whole process group is killed -> `timeout`.
- Output (the parent): stdout and stderr are read as they come, keeping only a tail; past
  `output_kb` the group is killed -> `sandbox_violation`. A 100 MB print costs neither memory
  nor disk.
- When the program ends, whatever it left running in its process group is killed. Inside
  bubblewrap that ends its PID namespace, and with it every process started there, even one
  that left the group with setsid; on the host's file system such a process would escape, and
  the guard keeps it from being started.

What a run returns is fit to store: the output tail and the detail are stripped of anything that
looks like a credential (`quality/credentials.py`), and a tail cut from longer output starts at a
line boundary, so no secret is kept in part.

Enforced only by the guard, an audit hook (`sys.addaudithook`) installed before the program runs
- starting processes: os.fork/forkpty/exec*/posix_spawn/spawn*/system, subprocess, and
  multiprocessing's spawn (its C entry point is replaced);
- the network: socket connect/bind/sendto/sendmsg and name lookups;
- writes outside the working directory: open for writing, and remove, rename, link, symlink,
  mkdir, chmod, chown, utime, truncate, xattrs, rmtree and sqlite3 files, paths resolved
  through symlinks and descriptors; /dev/null stays writable. On the host's file system only
  file permissions stop such writes beyond it, and as root nothing does;
- reads and directory listings outside the working directory, the standard library (its
  site-packages excluded), /dev/null, /dev/zero, /dev/urandom and /usr/share/zoneinfo: the
  second layer behind bubblewrap, and the only one with `filesystem: host`;
- signals to other processes, and ctypes function lookups and raw memory access.
Each refusal is reported before the program sees the exception (a PermissionError), so a
program that catches it is still a `sandbox_violation`. The guard stops what a program does
through Python; code built to escape (C reached without an audited call) gets past it, and then
only the kernel's barriers hold (bubblewrap's root among them). The verdict comes through a file descriptor the program could
write to: the sandbox contains accidents and ordinary bad code, it is not a proof against an
adversary.

Outcomes: `passed`; `tests_failed` (the tests raised; the detail names the exception, its
message and the line, so an assertion without a message says what it asserted); `timeout`;
`crashed` (the program could not run: a syntax error, an exception while it loads, MemoryError,
a signal, an exit before its tests); `sandbox_violation` (the guard refused something, the
output overflowed, a file grew too large). Without tests, the program only has to load: its
top-level code runs as the module `solution`, so a `__main__` block does not, unless `as_main`
runs it as a script (then input it waits for ends it cleanly: stdin is empty).
"""

from __future__ import annotations

import errno
import functools
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Imported, not only run: so the stage's code version covers the child's code too.
from synthmix.quality import sandbox_child
from synthmix.quality.credentials import redact_credentials

CHILD_SCRIPT = Path(sandbox_child.__file__)
SOLUTION_FILE = "solution.py"
TESTS_FILE = "tests.py"
EVENTS_FILE = "events.jsonl"
OUTPUT_TAIL_BYTES = 2048
# Inside bubblewrap's root: where the working directory and the child's script appear.
SANDBOX_WORK = "/sandbox"
SANDBOX_CHILD = "/run/synthmix/sandbox_child.py"
BWRAP = "bwrap"
BWRAP_INSTALL = "install Debian's bubblewrap (apt-get install bubblewrap; scripts/install.sh does it)"
# The system's shared libraries, as the host lays them out (real folders or links into /usr).
SYSTEM_LIBRARY_PATHS = ("/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/libx32", "/lib", "/lib64", "/lib32", "/libx32")
TIME_ZONES = "/usr/share/zoneinfo"
LAYOUT_TIMEOUT_SECONDS = 60
EVENTS_BYTES = 64 * 1024  # more than the child ever writes (ten violations, two reports)
READ_CHUNK_BYTES = 64 * 1024
# After the program ends: how long its process group may take to die once killed.
GROUP_EXIT_SECONDS = 5.0


class Outcome(StrEnum):
    """How a sandboxed run ended; the non-passing values are reject reasons of `verify_code`."""

    PASSED = "passed"
    TESTS_FAILED = "tests_failed"
    TIMEOUT = "timeout"
    CRASHED = "crashed"
    SANDBOX_VIOLATION = "sandbox_violation"


class SandboxLimits(BaseModel):
    """What one run may use; the `sandbox:` section of the verify_code stage."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu_seconds: int = Field(default=10, ge=1, description="CPU time (RLIMIT_CPU); then SIGXCPU")
    wall_seconds: float = Field(default=30.0, gt=0, description="wall-clock time before the process group is killed")
    memory_mb: int = Field(default=1024, ge=64, description="address space (RLIMIT_AS), in MiB")
    file_mb: int = Field(default=16, ge=1, description="largest file it may write (RLIMIT_FSIZE), in MiB")
    output_kb: int = Field(default=1024, ge=1, description="stdout plus stderr before the run is stopped, in KiB")
    open_files: int = Field(default=64, ge=16, description="open file descriptors (RLIMIT_NOFILE)")
    processes: int = Field(default=16, ge=1, description="processes and threads beyond the user's own (RLIMIT_NPROC; not for root)")
    filesystem: Literal["isolated", "host"] = Field(
        default="isolated",
        description="isolated: a minimal root built by bubblewrap (the working directory and the standard library only); "
        "host: the machine's file system, where only the audit hook stops reads",
    )


@dataclass(frozen=True)
class SandboxResult:
    outcome: Outcome
    detail: str  # why, in a line: the failing assertion, the exception, the signal, the refusal
    output_tail: str  # the last OUTPUT_TAIL_BYTES of stdout and stderr, interleaved as written
    network: str  # "namespace": the kernel cut the network off; "none": only the guard did
    filesystem: str  # "isolated": bubblewrap's minimal root; "host": the machine's, behind the guard


class SandboxError(RuntimeError):
    """The sandbox itself could not start a run: a broken installation, not bad code."""


def run_sandboxed(
    code: str, tests: str | None, limits: SandboxLimits, *, as_main: bool = False, guard: bool = True, python: str | None = None
) -> SandboxResult:
    """Run `code` (as the module `solution`), then `tests` with its names in scope, confined.

    `tests` is Python that raises when the code is wrong (asserts, `check(candidate)` calls,
    `test_*` functions or unittest cases it defines); None runs the code alone. `as_main` (only
    without tests) runs it as a script instead, as `__main__`, so the example under its
    `if __name__ == "__main__":` runs too; reading input it cannot have ends it cleanly. `guard=False`
    leaves out the audit hook, so tests can check the kernel barriers alone. `python` is the
    interpreter (default: the base installation of this one, so no virtual environment's packages).
    """
    interpreter = python or os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    isolated = limits.filesystem == "isolated"
    if isolated:
        layout = _interpreter_layout(interpreter)
        bwrap = _bwrap_path()
    with tempfile.TemporaryDirectory(prefix="synthmix-sandbox-", ignore_cleanup_errors=True) as root:
        work = Path(root) / "work"
        work.mkdir()
        (work / SOLUTION_FILE).write_text(code, encoding="utf-8")
        if tests is not None:
            (work / TESTS_FILE).write_text(tests, encoding="utf-8")
        events_path = Path(root) / EVENTS_FILE
        events_fd = os.open(events_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        config = {
            "events_fd": events_fd,
            "solution": SOLUTION_FILE,
            "tests": TESTS_FILE if tests is not None else None,
            "as_main": as_main and tests is None,
            "cpu_seconds": limits.cpu_seconds,
            "memory_bytes": limits.memory_mb << 20,
            "file_bytes": limits.file_mb << 20,
            "open_files": limits.open_files,
            "processes": limits.processes,
            # Counted here, on the host's /proc: inside the sandbox only its own processes show.
            "user_tasks": sandbox_child.count_user_tasks(os.getuid()),
            "network_isolated": isolated,
            "guard": guard,
        }
        child = [interpreter, "-I", "-B", "-u"]
        if isolated:
            home = SANDBOX_WORK
            command = [*_bwrap_arguments(bwrap, layout, work), *child, SANDBOX_CHILD, json.dumps(config)]
        else:
            home = str(work)
            command = [*child, str(CHILD_SCRIPT), json.dumps(config)]
        try:
            process = subprocess.Popen(
                command,
                cwd=work,
                env=_child_environment(home),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=(events_fd,),
            )
        finally:
            os.close(events_fd)
        watch = _watch(process, limits, exit_status_of_signal=isolated)
        events = _read_events(events_path)
    return _classify(watch, events, limits, filesystem=limits.filesystem, interpreter=interpreter)


def _bwrap_path() -> str:
    found = shutil.which(BWRAP)
    if found is None:
        raise SandboxError(
            f"the sandbox isolates the file system with bubblewrap, and '{BWRAP}' is not on PATH ({os.environ.get('PATH', '')}); "
            f"{BWRAP_INSTALL}, or set the stage's sandbox.filesystem: host to run code on this machine's file system, "
            "where only the audit hook stops it reading files"
        )
    return found


@functools.cache
def _interpreter_layout(interpreter: str) -> dict:
    """What of `interpreter` the sandbox shows (binary, standard library, shared library) and hides
    (its site-packages), asked of the interpreter itself once per process."""
    try:
        done = subprocess.run(
            [interpreter, "-I", "-B", str(CHILD_SCRIPT), "--layout"], capture_output=True, text=True, timeout=LAYOUT_TIMEOUT_SECONDS, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SandboxError(f"the sandbox could not ask {interpreter} where its standard library is: {error}; check that it is a Python interpreter") from None
    if done.returncode != 0:
        raise SandboxError(
            f"the sandbox could not ask {interpreter} where its standard library is (status {done.returncode}: {done.stderr.strip()[-500:]!r}); "
            f"check that `{interpreter} -I {CHILD_SCRIPT} --layout` runs"
        )
    return json.loads(done.stdout)


def _bwrap_arguments(bwrap: str, layout: dict, work: Path) -> list[str]:
    """bubblewrap's command line: a root holding the working directory, the interpreter and the
    system's shared libraries, with fresh namespaces and no capabilities."""
    arguments = [bwrap, "--unshare-all", "--die-with-parent", "--cap-drop", "ALL"]
    shown: list[str] = []
    for path in SYSTEM_LIBRARY_PATHS:
        if os.path.islink(path):
            arguments += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            arguments += ["--ro-bind", path, path]
            shown.append(path)
    for path in [layout["executable"], *layout["stdlib"], layout["library"], TIME_ZONES]:
        if path and os.path.exists(path):
            arguments += ["--ro-bind", path, path]
            shown.append(path)
    for path in layout["hidden"]:
        if os.path.isdir(path) and sandbox_child.is_within(path, shown):
            arguments += ["--tmpfs", path]
    arguments += ["--proc", "/proc", "--dev", "/dev"]
    arguments += ["--ro-bind", str(CHILD_SCRIPT), SANDBOX_CHILD, "--bind", str(work), SANDBOX_WORK, "--chdir", SANDBOX_WORK, "--"]
    return arguments


def _child_environment(home: str) -> dict[str, str]:
    """Nothing of ours (no credentials, no proxies): a search path, a locale, home and temp inside."""
    return {
        "PATH": os.defpath,
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        # Numeric libraries would otherwise start a thread per core.
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


@dataclass
class _Watch:
    """What the parent saw of a run."""

    returncode: int
    cpu_seconds: float  # user + system time of the program's main process
    output_tail: bytes
    killed_for: str | None  # "wall" or "output": the parent killed the group
    output_cut: bool  # the tail is the end of longer output


def _watch(process: subprocess.Popen, limits: SandboxLimits, *, exit_status_of_signal: bool) -> _Watch:
    """Read the output as it comes until the program ends, killing its group on overrun.

    `exit_status_of_signal`: the process is bubblewrap, which exits with 128 + N when the program
    was killed by signal N; the returned status is then -N, as if the program were watched directly."""
    deadline = time.monotonic() + limits.wall_seconds
    output = _Output(cap=limits.output_kb << 10)
    killed_for = None
    stdout = process.stdout
    assert stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        reading = True
        while not _has_exited(process.pid):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                killed_for = "wall"
                break
            if not reading:  # it closed its output but runs on
                time.sleep(min(remaining, 0.05))
            elif selector.select(timeout=min(remaining, 0.1)) and not output.read(stdout.fileno()):
                reading = False
                selector.unregister(stdout)
            if output.overflowed:
                killed_for = "output"
                break
        # Kill what it left running (children holding the pipe, or itself on overrun) ...
        _kill_group(process.pid)
        # ... then read what it wrote before it ended: with every writer dead, the pipe ends soon.
        while reading and killed_for is None and selector.select(timeout=0.5) and output.read(stdout.fileno()):
            if output.overflowed:
                killed_for = "output"
    stdout.close()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, with its CPU time (and its reaped children's)
    _wait_for_group_exit(process.pid)
    returncode = process.returncode
    if exit_status_of_signal and returncode > 128 and returncode - 128 in signal.valid_signals():
        returncode = -(returncode - 128)
    return _Watch(returncode, usage.ru_utime + usage.ru_stime, output.tail, killed_for, output.total > len(output.tail))


class _Output:
    """The output's last OUTPUT_TAIL_BYTES and its size: memory stays bounded whatever is printed."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.tail = b""
        self.total = 0

    @property
    def overflowed(self) -> bool:
        return self.total > self.cap

    def read(self, fd: int) -> bool:
        """Read what is there; False at the end of the output."""
        chunk = os.read(fd, READ_CHUNK_BYTES)
        self.total += len(chunk)
        self.tail = (self.tail + chunk)[-OUTPUT_TAIL_BYTES:]
        return bool(chunk)


def _has_exited(pid: int) -> bool:
    """Whether the process has ended, leaving it unreaped (its group id stays valid to kill)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # nothing of the run is left
        pass


def _wait_for_group_exit(pgid: int) -> None:
    """Kill the group until no live process is left in it: a run leaves nothing behind.

    The leader is reaped by now; members that outlived it belong to init and may stay zombies
    there, which take no CPU or memory."""
    deadline = time.monotonic() + GROUP_EXIT_SECONDS
    while _live_group_members(pgid) and time.monotonic() < deadline:
        _kill_group(pgid)
        time.sleep(0.01)


def _live_group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        # After the command name (which may hold spaces and parentheses): state, ppid, pgrp, ...
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _read_events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open("rb") as file:
        data = file.read(EVENTS_BYTES)
    events = []
    for line in data.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:  # a line cut off by the size cap, or written by the program
            continue
    return events


def _classify(watch: _Watch, events: list[dict], limits: SandboxLimits, *, filesystem: str, interpreter: str) -> SandboxResult:
    """The outcome, from what the parent saw and what the child reported, most telling first."""
    output = redact_credentials(_whole_lines(watch.output_tail.decode("utf-8", errors="replace"), cut=watch.output_cut))
    by_kind: dict[str, list[dict]] = {}
    for event in events:
        by_kind.setdefault(event.get("event"), []).append(event)
    if "setup_failed" in by_kind or (watch.returncode == sandbox_child.SETUP_FAILED_STATUS and "confined" not in by_kind):
        reason = by_kind.get("setup_failed", [{}])[0].get("error") or output[-500:]
        raise SandboxError(f"the sandbox could not confine its process: {reason}; check that {CHILD_SCRIPT} runs under {interpreter}")
    if "confined" not in by_kind:
        builder = (
            "; bubblewrap may have refused to build the sandbox (as a user other than root it needs user namespaces: "
            "sysctl kernel.unprivileged_userns_clone=1, or an AppArmor profile for bwrap), or set sandbox.filesystem: host"
            if filesystem == "isolated"
            else ""
        )
        raise SandboxError(
            f"the sandbox's child exited (status {watch.returncode}) before confining itself: {output[-500:]!r}; "
            f"check that {interpreter} -I {CHILD_SCRIPT} starts{builder}"
        )
    network = by_kind["confined"][0]["network"]

    def result(outcome: Outcome, detail: str) -> SandboxResult:
        return SandboxResult(outcome=outcome, detail=redact_credentials(detail), output_tail=output, network=network, filesystem=filesystem)

    if watch.killed_for == "output":
        return result(Outcome.SANDBOX_VIOLATION, f"output over the {limits.output_kb} KiB limit; stopped")
    if "violation" in by_kind:
        return result(Outcome.SANDBOX_VIOLATION, by_kind["violation"][0]["what"])
    if watch.killed_for == "wall":
        return result(Outcome.TIMEOUT, f"still running after the wall-clock limit of {limits.wall_seconds:g} s; killed")
    cpu_spent = watch.returncode == -signal.SIGXCPU or (watch.returncode == -signal.SIGKILL and watch.cpu_seconds >= limits.cpu_seconds)
    if cpu_spent and "finished" not in by_kind:
        return result(Outcome.TIMEOUT, f"over the CPU time limit of {limits.cpu_seconds} s ({signal.Signals(-watch.returncode).name})")
    finished = by_kind.get("finished")
    if not finished:
        how = f"killed by {signal.Signals(-watch.returncode).name}" if watch.returncode < 0 else f"exited with status {watch.returncode}"
        last_line = next((line for line in reversed(output.strip().splitlines()) if line.strip()), "")
        return result(Outcome.CRASHED, f"{how} before it finished" + (f": {last_line}" if last_line else ""))
    phase, error = finished[0]["phase"], finished[0]["error"]
    if error is None:
        return result(Outcome.PASSED, "ran its tests" if phase == "tests" else "ran (no tests)")
    detail = _describe(error)
    if error.get("errno") == errno.EFBIG:
        return result(Outcome.SANDBOX_VIOLATION, f"wrote a file over the {limits.file_mb} MiB limit: {detail}")
    if error["type"] == "MemoryError":
        return result(Outcome.CRASHED, f"ran out of its {limits.memory_mb} MiB of memory: {detail}")
    if phase == "tests":
        return result(Outcome.TESTS_FAILED, detail)
    return result(Outcome.CRASHED, detail)


def _whole_lines(tail: str, *, cut: bool) -> str:
    """A tail cut from longer output, from its first line boundary (or first space) on: the part
    of a line before it could be the end of a secret too short to be seen as one."""
    if not cut:
        return tail
    for boundary in ("\n", " "):
        if boundary in tail:
            return tail[tail.index(boundary) + 1 :]
    return tail


def _describe(error: dict) -> str:
    """ "AssertionError: message (tests.py line 3: assert f(2) == 4)"."""
    text = error["type"] + (f": {error['message']}" if error["message"] else "")
    return text + (f" ({error['where']})" if error.get("where") else "")
