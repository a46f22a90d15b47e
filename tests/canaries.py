"""Secrets planted where the issue (#27) found sandboxed code reading them: a canary in HOME, a
fake Ray session token under /tmp, and a file in a run directory. Each holds a token of its own."""

import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

RAY_TEMP = Path("/tmp/ray")


@contextlib.contextmanager
def planted_secrets(run_dir: Path) -> Iterator[dict[str, Path]]:
    """The three files, written before and removed after. The token goes where Ray keeps its
    sessions (/tmp/ray), or beside it for a user who cannot write there."""
    ray_temp = RAY_TEMP if os.access(RAY_TEMP, os.W_OK) or not RAY_TEMP.exists() else Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    ray_session = ray_temp / f"session_synthmix_canary_{os.getpid()}_{secrets.token_hex(4)}"
    files = {
        "home": Path.home() / f".synthmix-canary-{secrets.token_hex(4)}",
        "ray_token": ray_session / "auth_token",
        "run_dir": run_dir / "canary" / "part-00000.parquet",
    }
    try:
        for path in files.values():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_hex(32))
        yield files
    finally:
        for path in files.values():
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            ray_session.rmdir()
            if ray_temp != RAY_TEMP:
                ray_temp.rmdir()


def reading_program(paths: list[Path], also_glob: list[str] = ()) -> str:
    """A program that reads `paths`, whatever matches `also_glob`, every `auth_token` under /tmp
    and the dot-files of HOME, and prints what it read (and `refused <exception>` for each refusal)."""
    globs = " + ".join(f"glob.glob({pattern!r}, recursive=True)" for pattern in [*also_glob, "/tmp/**/auth_token"])
    return (
        "import glob, os\nfound = []\n"
        f"for path in {[str(path) for path in paths]!r} + {globs} + glob.glob(os.path.expanduser('~') + '/.*'):\n"
        "    try:\n        found.append(open(path, errors='replace').read())\n    except Exception as error:\n        print('refused', type(error).__name__)\n"
        "print('read:', found)\n"
    )
