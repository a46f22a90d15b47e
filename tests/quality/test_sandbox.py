"""The sandbox: verdicts on ordinary code, and each kind of misbehaviour contained with its outcome.

Network tests touch 127.0.0.1 only: a listening socket of this test process, which the sandboxed
program tries to reach. Runs use the isolated file system (bubblewrap) unless a test says
`filesystem: host`; a machine where bubblewrap cannot build its sandbox fails them (see
tests/container_features.py).
"""

import ast
import functools
import os
import secrets
import socket
import sys
from pathlib import Path

import pytest

from synthmix.quality import sandbox
from synthmix.quality.credentials import REDACTED
from synthmix.quality.sandbox import OUTPUT_TAIL_BYTES, Outcome, SandboxError, SandboxLimits, run_sandboxed
from tests.canaries import planted_secrets, reading_program
from tests.container_features import missing_feature

LIMITS = SandboxLimits(cpu_seconds=2, wall_seconds=60, memory_mb=256, file_mb=1, output_kb=64)
HOST = LIMITS.model_copy(update={"filesystem": "host"})


@functools.cache
def isolation_failure() -> str | None:
    """Why bubblewrap cannot build the sandbox here, or None when it can."""
    try:
        run_sandboxed("pass\n", None, LIMITS)
    except SandboxError as error:
        return str(error)
    return None


def run(code: str, tests: str | None = None, **kwargs):
    limits = kwargs.pop("limits", LIMITS)
    if limits.filesystem == "isolated" and isolation_failure() is not None:
        missing_feature("namespaces", f"bubblewrap cannot build the sandbox here: {isolation_failure()}")
    return run_sandboxed(code, tests, limits, **kwargs)


ADD = "def add(a, b):\n    return a + b\n"
WRONG_ADD = "def add(a, b):\n    return a - b\n"


# --- verdicts on ordinary code ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "tests",
    [
        "assert add(2, 2) == 4\n",
        "def check(candidate):\n    assert candidate(1, 2) == 3\n\ncheck(add)\n",  # HumanEval's shape
        "from solution import add\nassert add(0, 0) == 0\n",
        "def test_add():\n    assert add(2, 3) == 5\n",
        "import unittest\nclass AddTest(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 2), 4)\n",
    ],
)
def test_correct_code_passes_its_tests(tests: str) -> None:
    result = run(ADD, tests)
    assert result.outcome is Outcome.PASSED, result.detail


def test_a_failing_assertion_without_a_message_is_reported_by_its_line() -> None:
    result = run(WRONG_ADD, "assert add(1, 1) == 2 - 2\nassert add(2, 2) == 4\n")
    assert result.outcome is Outcome.TESTS_FAILED
    assert result.detail == "AssertionError (tests.py line 2: assert add(2, 2) == 4)"


def test_a_failing_assertion_reports_its_message() -> None:
    result = run(WRONG_ADD, "assert add(1, 1) == 2, 'one plus one is two'\n")
    assert result.outcome is Outcome.TESTS_FAILED
    assert result.detail.startswith("AssertionError: one plus one is two (tests.py line 1:")


@pytest.mark.parametrize(
    ("tests", "expected"),
    [
        ("def test_add():\n    assert add(2, 2) == 4\n", "tests.py line 2: assert add(2, 2) == 4"),
        ("import unittest\nclass AddTest(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 2), 4)\n", "0 != 4"),
        (
            "import unittest\nclass AddTest(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 2), 4)\n\nif __name__ == '__main__':\n    unittest.main()\n",
            "exit status 1",
        ),
    ],
)
def test_test_functions_and_cases_the_tests_only_define_are_run(tests: str, expected: str) -> None:
    result = run(WRONG_ADD, tests)
    assert result.outcome is Outcome.TESTS_FAILED
    assert expected in result.detail


def test_an_exception_raised_in_the_code_under_test_fails_the_tests() -> None:
    result = run("def first(items):\n    return items[0]\n", "assert first([]) is None\n")
    assert result.outcome is Outcome.TESTS_FAILED
    assert result.detail == "IndexError: list index out of range (solution.py line 2: return items[0])"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("def add(a, b)\n    return a + b\n", "SyntaxError"),
        ("import not_a_module_anywhere\n", "ModuleNotFoundError: No module named 'not_a_module_anywhere'"),
        ("value = 1 / 0\n", "ZeroDivisionError: division by zero (solution.py line 1: value = 1 / 0)"),
    ],
)
def test_code_that_cannot_load_crashes(code: str, expected: str) -> None:
    result = run(code, "assert True\n")
    assert result.outcome is Outcome.CRASHED
    assert expected in result.detail


def test_without_tests_code_only_has_to_load_and_its_main_block_does_not_run() -> None:
    code = ADD + "if __name__ == '__main__':\n    print(add(int(input()), 1))\n"
    assert run(code).outcome is Outcome.PASSED
    assert run("raise RuntimeError('boom')\n").outcome is Outcome.CRASHED


def test_exiting_before_the_tests_run_is_a_crash_not_a_pass() -> None:
    result = run(ADD + "import os\nos._exit(0)\n", "assert add(2, 2) == 5\n")
    assert result.outcome is Outcome.CRASHED
    assert "before it finished" in result.detail


def test_a_signal_crash_names_the_signal_and_the_last_output_line() -> None:
    result = run("import os, signal\nprint('about to fall over')\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    assert result.outcome is Outcome.CRASHED
    assert result.detail == "killed by SIGSEGV before it finished: about to fall over"


def test_output_written_just_before_the_program_ends_is_kept_from_a_line_boundary() -> None:
    result = run("import os\nprint('x' * 50_000)\nprint('y' * 100)\nprint('last words', flush=True)\nos._exit(0)\n")
    # The tail's first line, cut, is dropped: it could be the end of a secret.
    assert result.output_tail == "y" * 100 + "\nlast words\n"


def test_the_program_runs_in_an_empty_directory_with_a_minimal_environment() -> None:
    code = "import os, json\nprint(json.dumps({'files': sorted(os.listdir('.')), 'env': sorted(os.environ), 'home': os.environ['HOME'] == os.getcwd()}))\n"
    result = run(code)
    assert result.outcome is Outcome.PASSED
    assert '"files": ["solution.py"]' in result.output_tail
    assert '"home": true' in result.output_tail
    assert "PYTHONPATH" not in result.output_tail and "VIRTUAL_ENV" not in result.output_tail


# --- misbehaviour, contained -----------------------------------------------------------------------
def test_an_infinite_loop_is_stopped_at_its_cpu_limit() -> None:
    result = run("while True:\n    pass\n", limits=LIMITS.model_copy(update={"cpu_seconds": 1}))
    assert result.outcome is Outcome.TIMEOUT
    assert "CPU time limit of 1 s" in result.detail


def test_a_sleeping_program_is_killed_at_its_wall_clock_limit() -> None:
    result = run("import time\ntime.sleep(600)\n", limits=LIMITS.model_copy(update={"wall_seconds": 1}))
    assert result.outcome is Outcome.TIMEOUT
    assert "wall-clock limit of 1 s" in result.detail


@pytest.mark.parametrize(
    ("code", "refused"),
    [
        ("import os\nwhile True:\n    os.fork()\n", "os.fork"),
        ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", "os.fork"),  # caught, still seen
        ("import subprocess, sys\nwhile True:\n    subprocess.Popen([sys.executable, '-c', 'pass'])\n", "subprocess.Popen"),
        ("import multiprocessing\nwhile True:\n    multiprocessing.get_context('spawn').Process(target=print).start()\n", "fork_exec"),
        ("import os\nos.system('true')\n", "os.system"),
    ],
)
def test_a_fork_bomb_is_refused_at_its_first_process(code: str, refused: str) -> None:
    # As root the kernel's RLIMIT_NPROC does not apply: the guard is what contains it.
    result = run(code, limits=LIMITS.model_copy(update={"cpu_seconds": 1}))
    assert result.outcome is Outcome.SANDBOX_VIOLATION
    assert refused in result.detail


def test_a_memory_hog_runs_out_of_its_address_space() -> None:
    result = run("blocks = []\nwhile True:\n    blocks.append(bytearray(10**7))\n")
    assert result.outcome is Outcome.CRASHED
    assert result.detail.startswith("ran out of its 256 MiB of memory: MemoryError")


@pytest.fixture
def loopback_listener():
    """A listening socket on 127.0.0.1 that the sandboxed program will try to reach."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        yield server


def assert_nobody_connected(server: socket.socket) -> None:
    # The kernel completes a TCP handshake before accept(): a connection that got through waits here.
    with pytest.raises(BlockingIOError):
        server.accept()


def connect_code(port: int) -> str:
    return f"import socket\nconnection = socket.socket()\nconnection.connect(('127.0.0.1', {port}))\nconnection.sendall(b'escaped')\n"


def test_a_network_call_is_refused(loopback_listener) -> None:
    port = loopback_listener.getsockname()[1]
    result = run(connect_code(port))
    assert result.outcome is Outcome.SANDBOX_VIOLATION
    assert result.detail == f"socket.connect ('127.0.0.1', {port}): network access is not allowed"
    assert_nobody_connected(loopback_listener)


def test_without_the_guard_bubblewraps_network_namespace_keeps_the_hosts_loopback_out_of_reach(loopback_listener) -> None:
    result = run(connect_code(loopback_listener.getsockname()[1]), guard=False)
    assert result.network == "namespace"
    assert result.outcome is Outcome.CRASHED
    # The sandbox has a loopback of its own, where nothing listens.
    assert "Connection refused" in result.detail
    assert_nobody_connected(loopback_listener)


def test_on_the_host_file_system_without_the_guard_the_childs_network_namespace_keeps_loopback_unreachable(loopback_listener) -> None:
    result = run(connect_code(loopback_listener.getsockname()[1]), guard=False, limits=HOST)
    if result.network != "namespace":
        missing_feature("network_namespace", "the sandbox's child could not enter a network namespace (user namespaces off, no CAP_SYS_ADMIN)")
    assert result.outcome is Outcome.CRASHED
    assert "Network is unreachable" in result.detail
    assert_nobody_connected(loopback_listener)


@pytest.mark.parametrize(
    "code",
    [
        "open({target!r}, 'w').write('overwritten')\n",
        "import os\nos.symlink({target!r}, 'link')\nopen('link', 'a').write('overwritten')\n",
        "import os\nos.remove({target!r})\n",
        "import os\nos.rename({target!r}, 'taken')\n",
        "import os\nos.link({target!r}, 'hard')\nopen('hard', 'w').write('overwritten')\n",
        "import os\nfd = os.open({target!r}, os.O_RDONLY)\nos.chmod(fd, 0o777)\n",
        "import sqlite3\nsqlite3.connect({target!r} + '.db').execute('create table t (x)')\n",
    ],
)
def test_writes_outside_its_directory_are_refused(tmp_path: Path, code: str) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("original")
    target.chmod(0o644)
    result = run(code.format(target=str(target)))
    assert result.outcome is Outcome.SANDBOX_VIOLATION
    assert "outside the sandbox's directory" in result.detail
    assert target.read_text() == "original"
    assert target.stat().st_mode & 0o777 == 0o644
    assert sorted(path.name for path in tmp_path.iterdir()) == ["precious.txt"]


def test_writes_inside_its_directory_and_to_dev_null_are_allowed() -> None:
    code = (
        "import os, tempfile, sqlite3\nos.mkdir('out')\nopen('out/a.txt', 'w').write('x')\nos.rename('out/a.txt', 'out/b.txt')\n"
        "with tempfile.NamedTemporaryFile('w') as scratch:\n    scratch.write('y')\n"
        "open(os.devnull, 'w').write('z')\nsqlite3.connect('local.db').execute('create table t (x)')\n"
    )
    result = run(code)
    assert result.outcome is Outcome.PASSED, result.detail


def test_a_100_mb_print_is_stopped_at_the_output_limit() -> None:
    result = run("print('x' * 100_000_000)\n", limits=LIMITS.model_copy(update={"memory_mb": 1024}))
    assert result.outcome is Outcome.SANDBOX_VIOLATION
    assert result.detail == "output over the 64 KiB limit; stopped"
    assert len(result.output_tail) <= OUTPUT_TAIL_BYTES


def test_a_file_over_the_size_limit_is_a_violation() -> None:
    result = run("open('big.bin', 'wb').write(b'x' * (2 << 20))\n")
    assert result.outcome is Outcome.SANDBOX_VIOLATION
    assert "File too large" in result.detail


def test_on_the_host_file_system_processes_left_running_are_killed_when_the_program_ends() -> None:
    # Without the guard, so the children start; three sleepers are safe even where RLIMIT_NPROC is not applied.
    code = (
        "import os, time\nfor _ in range(3):\n    pid = os.fork()\n    if pid == 0:\n        time.sleep(600)\n        os._exit(0)\n"
        "    print('child', pid, os.getpgid(0), flush=True)\n"
    )
    result = run(code, guard=False, limits=HOST)
    assert result.outcome is Outcome.PASSED
    children = [line.split() for line in result.output_tail.splitlines() if line.startswith("child")]
    assert len(children) == 3
    for _, pid, group in children:
        assert not is_live_in_group(int(pid), int(group))


def is_live_in_group(pid: int, group: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[0] not in ("Z", "X") and int(fields[2]) == group


def test_inside_bubblewrap_no_process_outlives_the_program_not_even_one_that_left_its_group() -> None:
    # Each child prints its PID namespace (an inode the host sees too); one leaves the process group.
    code = (
        "import os, time\nfor index in range(3):\n    if os.fork() == 0:\n        if index == 0:\n            os.setsid()\n"
        "        time.sleep(600)\n        os._exit(0)\nprint('namespace', os.readlink('/proc/self/ns/pid'), flush=True)\n"
    )
    result = run(code, guard=False)
    assert result.outcome is Outcome.PASSED
    (namespace,) = [line.split()[1] for line in result.output_tail.splitlines() if line.startswith("namespace")]
    assert namespace != os.readlink("/proc/self/ns/pid"), "the program ran in a PID namespace of its own"
    assert processes_in_namespace(namespace) == []


def processes_in_namespace(namespace: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.readlink(f"/proc/{entry.name}/ns/pid") == namespace and Path(f"/proc/{entry.name}/stat").read_text().split(") ")[1][0] not in "ZX":
                    found.append(int(entry.name))
            except OSError:  # ended while we looked, or not ours to read
                continue
    return found


@pytest.mark.parametrize(("limits", "message"), [(LIMITS, "could not ask /bin/false where its standard library is"), (HOST, "before confining itself")])
def test_an_interpreter_that_cannot_start_the_sandbox_is_an_error_not_a_verdict(limits: SandboxLimits, message: str) -> None:
    with pytest.raises(SandboxError, match=message):
        run(ADD, python="/bin/false", limits=limits)


def test_without_bubblewrap_an_isolated_run_is_an_error_saying_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(SandboxError, match=r"(?s)'bwrap' is not on PATH.*apt-get install bubblewrap.*filesystem: host"):
        run_sandboxed(ADD, None, LIMITS)
    assert run_sandboxed(ADD, None, HOST).outcome is Outcome.PASSED, "the host's file system needs no bubblewrap"


# --- what the program may read ---------------------------------------------------------------------
@pytest.fixture
def secrets_on_this_machine(tmp_path):
    with planted_secrets(tmp_path / "runs" / "quickstart") as files:
        yield files


@pytest.mark.parametrize("guard", [True, False], ids=["guarded", "bubblewrap_alone"])
def test_secrets_outside_the_sandbox_are_not_there_to_read(secrets_on_this_machine, guard: bool) -> None:
    paths = list(secrets_on_this_machine.values())
    result = run(reading_program(paths), "assert not found, found\n", guard=guard)
    tokens = [path.read_text() for path in paths]
    assert not any(token in result.output_tail or token in result.detail for token in tokens)
    assert "read: []" in result.output_tail
    assert result.outcome is (Outcome.SANDBOX_VIOLATION if guard else Outcome.PASSED), result.detail
    assert result.filesystem == "isolated"


def test_on_the_host_file_system_the_guard_refuses_every_read_outside(secrets_on_this_machine) -> None:
    paths = list(secrets_on_this_machine.values())
    result = run(reading_program(paths), "assert not found, found\n", limits=HOST)
    assert result.outcome is Outcome.SANDBOX_VIOLATION
    assert "outside the sandbox's directory and the standard library" in result.detail
    assert result.output_tail.count("refused SandboxViolation") == len(paths)
    assert not any(path.read_text() in result.output_tail + result.detail for path in paths)
    assert result.filesystem == "host"


@pytest.mark.parametrize("limits", [LIMITS, HOST], ids=["isolated", "host"])
def test_the_standard_library_works_and_installed_packages_are_not_there(limits: SandboxLimits) -> None:
    code = (
        "import json, sqlite3, zoneinfo, decimal, unittest, tempfile, email.mime.text\n"
        "assert zoneinfo.ZoneInfo('Europe/Paris').key == 'Europe/Paris'\nassert sqlite3.connect(':memory:').execute('select 1').fetchone() == (1,)\n"
    )
    assert run(code, limits=limits).outcome is Outcome.PASSED
    for package in ("pytest", "numpy", "pydantic"):
        result = run(f"import {package}\n", limits=limits)
        assert result.outcome is Outcome.CRASHED and f"No module named '{package}'" in result.detail, result.detail


@pytest.mark.parametrize("guard", [True, False], ids=["guarded", "bubblewrap_alone"])
def test_the_program_cannot_list_or_write_what_lies_outside(guard: bool) -> None:
    code = "import os\nprint('root', sorted(os.listdir('/')))\nopen('/tmp/escape', 'w')\n"
    result = run(code, guard=guard)
    if guard:
        assert result.outcome is Outcome.SANDBOX_VIOLATION and "os.listdir '/'" in result.detail
    else:
        assert result.outcome is Outcome.CRASHED
        listed = next(line for line in result.output_tail.splitlines() if line.startswith("root"))
        # The interpreter's own folder (pyenv's lies under /root) shows its binary and standard library only.
        interpreter_top = Path(os.path.realpath(sys._base_executable)).parts[1]
        assert set(ast.literal_eval(listed.removeprefix("root "))) <= {
            "dev",
            "proc",
            "run",
            "sandbox",
            "usr",
            "lib",
            "lib64",
            "lib32",
            "libx32",
            interpreter_top,
        }
    assert not Path("/tmp/escape").exists()


def test_credentials_a_program_prints_or_raises_are_stripped_from_the_result() -> None:
    ray_token, aws_key = secrets.token_hex(32), "AKIA" + secrets.token_hex(8).upper()
    code = f"print('token {ray_token}')\nprint('aws_access_key_id = {aws_key}')\nprint('-----BEGIN RSA PRIVATE KEY-----\\nMIIEow' + 'A' * 60)\n"
    result = run(code, f"assert False, 'password: hunter2hunter2 {ray_token}'\n")
    assert result.outcome is Outcome.TESTS_FAILED
    for secret in (ray_token, aws_key, "MIIEow", "hunter2hunter2"):
        assert secret not in result.output_tail and secret not in result.detail
    assert result.output_tail.count(REDACTED) == 3 and "password: " + REDACTED in result.detail
