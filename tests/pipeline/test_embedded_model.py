"""The embedded model's cache: keyed by the GGUF hash, built once, atomically, under a lock."""

import threading
import time

import pytest

from pipeline import embedded_model


@pytest.fixture
def fake_conversion(monkeypatch, tmp_path):
    """Point the cache at tmp_path and replace the 20 s conversion by a slow fake that counts calls."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls = []

    def convert(gguf, out_dir):
        calls.append(out_dir)
        (out_dir / "config.json").write_text("{}")
        time.sleep(0.3)  # wide enough for a second caller to arrive mid-conversion

    monkeypatch.setattr(embedded_model, "convert_gguf_to_model_dir", convert)
    return calls


def test_cache_dir_is_named_for_the_model_and_gguf_hash(fake_conversion, tmp_path):
    path = embedded_model.embedded_model_dir()
    assert path.parent == tmp_path / "synthmix" / "models"
    assert path.name.startswith(f"{embedded_model.EMBEDDED_MODEL_NAME}-")


def test_two_callers_at_once_convert_once_and_get_the_same_finished_dir(fake_conversion):
    results = []
    threads = [threading.Thread(target=lambda: results.append(embedded_model.prepare_embedded_model())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fake_conversion) == 1
    assert results[0] == results[1]
    assert embedded_model.is_model_dir_ready(results[0])
    assert (results[0] / "config.json").is_file()


def test_failed_conversion_leaves_no_directory_behind(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    def broken(gguf, out_dir):
        (out_dir / "partial.safetensors").write_text("half")
        raise OSError("disk full")

    monkeypatch.setattr(embedded_model, "convert_gguf_to_model_dir", broken)
    with pytest.raises(OSError, match="disk full"):
        embedded_model.prepare_embedded_model()
    models = tmp_path / "synthmix" / "models"
    assert [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == []
    assert "not converted yet" in embedded_model.embedded_model_status()


def test_status_says_ready_once_prepared(fake_conversion):
    path = embedded_model.prepare_embedded_model()
    assert embedded_model.embedded_model_status() == f"ready at {path}"
