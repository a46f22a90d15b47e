"""The child side of `synthmix.quality.sandbox`: confine this process, then run the program and its tests.

Started as `python -I -B -u sandbox_child.py CONFIG_JSON` in the sandbox's working directory, in
a session of its own (inside bubblewrap's minimal root when the file system is isolated).
Standard library only, importing nothing of synthmix: under `-I` the script's folder is not on
`sys.path`, so the program under test cannot import our modules either. `python -I
sandbox_child.py --layout` prints, as JSON, what of this interpreter a sandbox must show it (its
binary, standard library and shared library) and what it must hide (its site-packages).

Order matters. What needs privileges happens first: enter a network namespace, set the resource
limits. Then the guard (an audit hook) goes in, and only then does the program run, as the module
`solution`; its tests run after it as `__main__`, with the program's names in scope.

Reports go to the events descriptor the parent passed (not to stdout, which is the program's),
one JSON object a line:
  {"event": "confined", "network": "namespace" | "none", "network_error", "processes_limited"}
  {"event": "violation", "what": ...}            each refusal of the guard (the first ten)
  {"event": "finished", "phase": "code" | "tests", "error": null | {type, message, where, errno}}
Exit status: 0 after a clean "finished", 1 after one with an error, 3 when it could not confine
itself (the "setup_failed" event says why).
"""

import json
import os
import resource
import site
import sys
import sysconfig
import traceback
import types

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
REPORTED_VIOLATIONS = 10
MESSAGE_CHARS = 1000
SETUP_FAILED_STATUS = 3

# Audit events the guard refuses outright, by what they would do.
PROCESS_EVENTS = frozenset({"os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.system", "subprocess.Popen"})
NETWORK_EVENTS = frozenset(
    {
        "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
        "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo",
    }
)  # fmt: skip
# Looking up C functions by name and touching raw addresses: the way around every other refusal.
RAW_MEMORY_EVENTS = frozenset({"ctypes.dlsym", "ctypes.cdata", "ctypes.call_function"})
# Events that change the file system: the argument positions of each path they change, with the
# position of the directory descriptor it is relative to (None: no such argument).
PATH_EVENTS = {
    "os.remove": ((0, 1),),
    "os.rmdir": ((0, 1),),
    "os.mkdir": ((0, 2),),
    "os.chmod": ((0, 2),),
    "os.chown": ((0, 3),),
    "os.utime": ((0, 3),),
    "os.truncate": ((0, None),),
    "os.setxattr": ((0, None),),
    "os.removexattr": ((0, None),),
    "os.chflags": ((0, None),),
    "os.lchflags": ((0, None),),
    "os.rename": ((0, 2), (1, 3)),
    "os.link": ((0, 2), (1, 3)),
    "os.symlink": ((1, 2),),
    "shutil.rmtree": ((0, 1),),
    "sqlite3.connect": ((0, None),),
}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
# Events that list a directory: the argument position of the directory.
LISTING_EVENTS = {"os.listdir": 0, "os.scandir": 0}
# Devices any program may read; public data the standard library reads (zoneinfo's time zones).
READABLE_FILES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")
READABLE_DATA_DIRS = ("/usr/share/zoneinfo",)


class SandboxViolation(PermissionError):
    """Raised where the guard refuses an operation; reported before it is raised, so a program
    that catches it is still caught."""


class Events:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def emit(self, event: str, **fields) -> None:
        os.write(self.fd, (json.dumps({"event": event, **fields}) + "\n").encode())


def main() -> None:
    if sys.argv[1:] == ["--layout"]:
        print(json.dumps(interpreter_layout()))
        return
    config = json.loads(sys.argv[1])
    events = Events(config["events_fd"])
    try:
        # Inside bubblewrap the run has a network namespace already, whose loopback only the
        # program itself could listen on.
        network, network_error = ("namespace", None) if config["network_isolated"] else enter_network_namespace()
        set_limits(config, config["user_tasks"])
    except Exception as error:  # reported to the parent, which raises SandboxError with it
        events.emit("setup_failed", error=f"{type(error).__name__}: {error}")
        os._exit(SETUP_FAILED_STATUS)
    events.emit("confined", network=network, network_error=network_error, processes_limited=os.getuid() != 0)
    work = os.path.realpath(os.getcwd())
    hidden = [os.path.realpath(path) for path in installed_package_dirs()]
    # Installed packages are not the program's: it gets the standard library only.
    sys.path = [entry for entry in sys.path if not is_within(os.path.realpath(entry), hidden)]
    if config["guard"]:
        readable = [work, os.path.realpath(__file__), *READABLE_FILES, *READABLE_DATA_DIRS, *(os.path.realpath(entry) for entry in sys.path if entry)]
        install_guard(work, events, readable=readable, hidden=hidden)
    phase, error = run_program(work, config["solution"], config["tests"], as_main=config.get("as_main", False))
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # the program closed or replaced it
            pass
    events.emit("finished", phase=phase, error=error)
    # os._exit: no atexit handler or lingering thread of the program runs after the verdict.
    os._exit(0 if error is None else 1)


def enter_network_namespace() -> tuple[str, str | None]:
    """A network namespace of our own: it has a loopback interface only, and that one is down.

    As root (or with CAP_SYS_ADMIN) a bare CLONE_NEWNET; otherwise inside a new user namespace,
    where our uid and gid map onto themselves so the files we make stay ours. Neither possible
    (unprivileged user namespaces switched off, a seccomp profile): "none", and only the guard
    stands between the program and the network.
    """
    import ctypes  # before the guard: loading libc is an audited dlopen

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) == 0:
        return "namespace", None
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        return "none", os.strerror(ctypes.get_errno())
    for name, mapping in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as file:
            file.write(mapping)
    return "namespace", None


def interpreter_layout() -> dict:
    """What a sandbox must show of this interpreter, and the package folders it must hide."""
    library = None
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        candidate = os.path.join(sysconfig.get_config_var("LIBDIR") or "", sysconfig.get_config_var("INSTSONAME") or "")
        library = os.path.realpath(candidate) if os.path.isfile(candidate) else None
    stdlib = {os.path.realpath(sysconfig.get_path(name)) for name in ("stdlib", "platstdlib")}
    return {
        "executable": os.path.realpath(sys.executable),
        "stdlib": sorted(path for path in stdlib if os.path.isdir(path)),
        "library": library,
        "hidden": sorted({os.path.realpath(path) for path in installed_package_dirs()}),
    }


def installed_package_dirs() -> list[str]:
    """The interpreter's site-packages (dist-packages on Debian): installed packages, not the standard library."""
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return dirs


def is_within(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def set_limits(config: dict, user_tasks: int) -> None:
    """Kernel limits on this process and everything it starts; `user_tasks`: the user's processes
    and threads before this run."""
    cpu = config["cpu_seconds"]
    limits = {
        resource.RLIMIT_CORE: (0, 0),
        # SIGXCPU at the soft limit; SIGKILL a second later for a program that handles SIGXCPU.
        resource.RLIMIT_CPU: (cpu, cpu + 1),
        resource.RLIMIT_AS: (config["memory_bytes"],) * 2,
        resource.RLIMIT_FSIZE: (config["file_bytes"],) * 2,
        resource.RLIMIT_NOFILE: (config["open_files"],) * 2,
        # Counts every process and thread of the user, not of this sandbox: allow that many more.
        # The kernel does not apply it to root.
        resource.RLIMIT_NPROC: (user_tasks + config["processes"],) * 2,
    }
    for which, (soft, hard) in limits.items():
        _, current_hard = resource.getrlimit(which)
        if current_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, current_hard), min(hard, current_hard)
        resource.setrlimit(which, (soft, hard))


def count_user_tasks(uid: int) -> int:
    """Processes and threads whose real uid is `uid` (0 for root, whom RLIMIT_NPROC spares anyway).

    Counted by the parent, on the host's /proc: inside the sandbox's PID namespace only its own
    processes show, and inside a user namespace every other user's process would show our uid."""
    if uid == 0:
        return 0
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:  # the process ended while we looked
            continue
        if int(fields.get("Uid", "-1").split()[0]) == uid:
            count += int(fields.get("Threads", "1"))
    return count


def install_guard(work: str, events: Events, *, readable: list[str], hidden: list[str]) -> None:
    """An audit hook refusing processes, the network, raw memory, writes outside `work`, and reads
    and listings outside `readable` (the working directory, the standard library, devices and time
    zones) or inside `hidden` (installed packages).

    It cannot be removed from Python; it stops the program's own calls, not a determined escape
    (code that reaches C without an audited call). The kernel limits, and bubblewrap's minimal
    root where the file system is isolated, hold either way.
    """
    refusals = [0]

    def refuse(what: str) -> None:
        refusals[0] += 1
        if refusals[0] <= REPORTED_VIOLATIONS:
            events.emit("violation", what=what[:MESSAGE_CHARS])
        raise SandboxViolation(f"sandbox: {what}")

    def outside(path, dir_fd) -> bool:
        resolved = resolve_path(path, dir_fd)
        return resolved is not None and resolved != os.devnull and not is_within(resolved, [work])

    def unreadable(path, dir_fd) -> bool:
        resolved = resolve_path(path, dir_fd)
        return resolved is not None and (not is_within(resolved, readable) or is_within(resolved, hidden))

    def hook(event: str, args: tuple) -> None:
        if event in PROCESS_EVENTS:
            refuse(f"{event}: starting a process is not allowed")
        elif event in NETWORK_EVENTS:
            target = args[1] if event in ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg") else args[:2]
            refuse(f"{event} {target!r}: network access is not allowed")
        elif event in RAW_MEMORY_EVENTS:
            refuse(f"{event}: calling C functions or raw memory through ctypes is not allowed")
        elif event == "open":
            path, mode, flags = args
            writing = any(char in (mode or "") for char in "wax+") or bool((flags or 0) & WRITE_FLAGS)
            if writing and outside(path, None):
                refuse(f"open {path!r} for writing: outside the sandbox's directory")
            elif not writing and unreadable(path, None):
                refuse(f"open {path!r} for reading: outside the sandbox's directory and the standard library")
        elif event in LISTING_EVENTS:
            path = args[LISTING_EVENTS[event]]
            if unreadable("." if path is None else path, None):
                refuse(f"{event} {path!r}: outside the sandbox's directory and the standard library")
        elif event in PATH_EVENTS:
            for path_at, dir_fd_at in PATH_EVENTS[event]:
                dir_fd = args[dir_fd_at] if dir_fd_at is not None else None
                if outside(args[path_at], dir_fd):
                    refuse(f"{event} {args[path_at]!r}: outside the sandbox's directory")
        elif event in ("os.kill", "os.killpg") and args[0] not in (os.getpid(), os.getpgid(0)):
            refuse(f"{event} {args[0]}: signalling other processes is not allowed")

    sys.addaudithook(hook)
    # multiprocessing's spawn and forkserver start processes through this C function directly,
    # with no audit event: replace it with a refusal.
    import _posixsubprocess

    def refused_fork_exec(*args, **kwargs):
        refuse("_posixsubprocess.fork_exec: starting a process is not allowed")

    _posixsubprocess.fork_exec = refused_fork_exec


def resolve_path(path, dir_fd) -> str | None:
    """The real absolute path an audited path names (descriptors through /proc), or None when it
    names no file (":memory:", a pipe or socket descriptor)."""
    if isinstance(path, int):
        try:
            target = os.readlink(f"/proc/self/fd/{path}")
        except OSError:
            return None
        return os.path.realpath(target) if target.startswith("/") else None
    path = os.fsdecode(path)
    if path in ("", ":memory:"):
        return None
    if not os.path.isabs(path) and dir_fd not in (None, -1):
        base = resolve_path(dir_fd, None)
        if base is None:
            return None
        path = os.path.join(base, path)
    return os.path.realpath(path)


def run_program(work: str, solution_file: str, tests_file: str | None, *, as_main: bool = False) -> tuple[str, dict | None]:
    """Run the program, then its tests: (the phase reached, the error that ended it or None)."""
    solution_path = os.path.join(work, solution_file)
    sys.argv = [solution_path]
    sys.path.insert(0, work)
    try:
        solution = load_solution(solution_path, as_main=as_main)
    except EOFError as error:
        if as_main:  # input() at the end of an empty stdin: the script waits for a user it cannot have
            return "code", None
        return "code", describe_error(error, work)
    except SystemExit as exit_:
        if exit_.code in (None, 0) and tests_file is None:
            return "code", None
        return "code", describe_error(exit_, work)
    except BaseException as error:  # anything the program raises is its outcome, not ours
        return "code", describe_error(error, work)
    if tests_file is None:
        return "code", None
    tests_path = os.path.join(work, tests_file)
    sys.argv = [tests_path]
    try:
        run_tests(solution, tests_path)
    except SystemExit as exit_:  # unittest.main() ends so, status 0 when every test passed
        return "tests", None if exit_.code in (None, 0) else describe_error(exit_, work)
    except BaseException as error:
        return "tests", describe_error(error, work)
    return "tests", None


def load_solution(path: str, *, as_main: bool = False) -> types.ModuleType:
    """The program as the module `solution`, so `from solution import f` works in its tests, and
    a block under `if __name__ == "__main__":` does not run (it might wait for input); or, with
    `as_main` (no tests), as the script `__main__`, its example usage included."""
    name = "__main__" if as_main else "solution"
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module
    with open(path, encoding="utf-8") as file:
        source = file.read()
    exec(compile(source, path, "exec"), module.__dict__)
    return module


def run_tests(solution: types.ModuleType, path: str) -> None:
    """The tests as `__main__`, with the program's names in scope. Test functions (`test_*`,
    without parameters) and unittest cases they define but do not call are run after them."""
    import inspect

    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__dict__.update({name: value for name, value in vars(solution).items() if not name.startswith("__")})
    sys.modules["__main__"] = main
    with open(path, encoding="utf-8") as file:
        source = file.read()
    exec(compile(source, path, "exec"), main.__dict__)
    defined_here = [value for value in list(vars(main).values()) if getattr(getattr(value, "__code__", None), "co_filename", None) == path]
    for function in defined_here:
        if function.__name__.startswith("test") and not any(
            parameter.default is parameter.empty for parameter in inspect.signature(function).parameters.values()
        ):
            function()
    run_unittest_cases(main, path)


def run_unittest_cases(main: types.ModuleType, path: str) -> None:
    """Run the unittest.TestCase classes the tests define; the first failure is raised."""
    unittest = sys.modules.get("unittest")
    if unittest is None:  # the tests never imported it, so they define no TestCase
        return
    cases = [value for value in vars(main).values() if isinstance(value, type) and issubclass(value, unittest.TestCase) and value.__module__ == "__main__"]
    if not cases:
        return
    result = unittest.TestResult()
    unittest.TestSuite(unittest.defaultTestLoader.loadTestsFromTestCase(case) for case in cases).run(result)
    problems = result.failures + result.errors
    if problems:
        test, trace = problems[0]
        raise AssertionError(f"{test.id()}: {trace.strip().splitlines()[-1]}")


def describe_error(error: BaseException, work: str) -> dict:
    """What ended the program: the exception, its message and the line of the program or tests
    it came from (so an assertion without a message still says what it asserted)."""
    if isinstance(error, SystemExit):  # sys.exit("why") prints why and exits 1; unittest passes a bool
        code = error.code
        message = f"exit status {1 if isinstance(code, str) else int(code or 0)}" + (f": {code}" if isinstance(code, str) else "")
    else:
        message = str(error)
    where = None
    if isinstance(error, SyntaxError) and error.filename:
        where = f"{os.path.basename(error.filename)} line {error.lineno}: {(error.text or '').strip()}"
    else:
        frames = [frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename.startswith(work + os.sep)]
        if frames:
            frame = frames[-1]
            where = f"{os.path.basename(frame.filename)} line {frame.lineno}: {(frame.line or '').strip()}"
    return {
        "type": type(error).__name__,
        "message": message[:MESSAGE_CHARS],
        "where": where[:MESSAGE_CHARS] if where else None,
        "errno": getattr(error, "errno", None),
    }


if __name__ == "__main__":
    main()
