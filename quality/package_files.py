"""Data files shipped inside installed PyPI distributions (models, benchmark sets), found without a download."""

import importlib.metadata
from pathlib import Path


def locate_package_file(distribution_name: str, file_name: str, *, needed_for: str) -> Path:
    """Path of the file called `file_name` inside the installed distribution `distribution_name`.

    `needed_for` says what the file is for, so the error tells the user why to install the package.
    """
    try:
        distribution = importlib.metadata.distribution(distribution_name)
    except importlib.metadata.PackageNotFoundError as error:
        raise FileNotFoundError(
            f"{needed_for} needs {file_name} from the PyPI package '{distribution_name}', which is not installed; run `pip install {distribution_name}`"
        ) from error
    for file in distribution.files or []:
        if file.name == file_name:
            path = Path(distribution.locate_file(file))
            if path.is_file():
                return path
    raise FileNotFoundError(
        f"{needed_for} needs {file_name}, but the installed '{distribution_name}' {distribution.version} holds "
        f"none; reinstall it with `pip install --force-reinstall {distribution_name}`"
    )


def package_data_path(file_name: str) -> Path:
    """Path of a data file synthmix ships in `quality/data/` (package data, so wheels and clusters have it)."""
    path = Path(__file__).resolve().parent / "data" / file_name
    if not path.is_file():
        raise FileNotFoundError(f"synthmix's data file {file_name} is missing at {path}; reinstall synthmix (the file is package data)")
    return path
