"""The processor decides the embedded models' number format: bfloat16 only where it multiplies in it."""

import pytest

from synthmix.pipeline.llm import cpu_features
from synthmix.pipeline.llm.cpu_features import choose_dtype, describe_cpu, embedded_dtype, read_cpu_info
from synthmix.pipeline.llm.engines import embedded, vllm
from synthmix.pipeline.llm.engines.embedded import EmbeddedEngine, EmbeddedModel
from synthmix.pipeline.llm.engines.vllm import VllmEngine, VllmModel

# Abridged /proc/cpuinfo of the machines the choice is about.
EPYC_AVX512_BF16 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bf16
"""
EPYC_AVX2 = """processor\t: 0
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse2 avx avx2 fma
"""
SAPPHIRE_RAPIDS = """model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: avx2 fma avx512f avx512_vnni amx_bf16 amx_tile amx_int8 avx512_bf16
"""
GRAVITON3 = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes sha1 sha2 crc32 atomics fphp asimdhp cpuid sve bf16 i8mm
"""
GRAVITON2 = """processor\t: 0
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs
"""


def info(text, machine="x86_64", **env):
    return read_cpu_info(text, machine=machine, env=env)


@pytest.mark.parametrize(
    ("cpuinfo", "machine", "dtype"),
    [
        (EPYC_AVX512_BF16, "x86_64", "bfloat16"),
        (SAPPHIRE_RAPIDS, "x86_64", "bfloat16"),
        (EPYC_AVX2, "x86_64", "float32"),
        (GRAVITON3, "aarch64", "bfloat16"),
        (GRAVITON2, "aarch64", "float32"),
        ("", "x86_64", "float32"),
    ],
    ids=["avx512_bf16", "amx", "avx2_only", "arm_bf16", "arm_neon_only", "unreadable"],
)
def test_bfloat16_only_where_the_processor_multiplies_in_it(cpuinfo, machine, dtype):
    assert choose_dtype(info(cpuinfo, machine)).dtype == dtype


def test_the_reason_names_the_flags_it_decided_by():
    assert "avx512_bf16" in choose_dtype(info(EPYC_AVX512_BF16)).reason
    reason = choose_dtype(info(EPYC_AVX2)).reason
    assert "no bfloat16 arithmetic" in reason and "avx512_bf16 or amx_bf16" in reason


def test_the_flags_can_be_replaced_to_stand_for_another_processor():
    cpu = info(EPYC_AVX512_BF16, SYNTHMIX_CPU_FLAGS="avx2, fma")
    assert cpu.flags == {"avx2", "fma"} and "SYNTHMIX_CPU_FLAGS" in cpu.flags_from
    assert choose_dtype(cpu).dtype == "float32"


@pytest.mark.parametrize("env", [{"ATEN_CPU_CAPABILITY": "avx2"}, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"}])
def test_libraries_kept_off_the_bfloat16_instructions_mean_float32(env):
    choice = choose_dtype(info(EPYC_AVX512_BF16, **env))
    assert choice.dtype == "float32"
    assert next(iter(env.values())) in choice.reason


def test_libraries_allowed_the_bfloat16_instructions_keep_bfloat16():
    assert choose_dtype(info(EPYC_AVX512_BF16, ATEN_CPU_CAPABILITY="avx512", ONEDNN_MAX_CPU_ISA="AVX512_CORE_BF16")).dtype == "bfloat16"


def test_a_report_names_the_processor_and_its_extensions():
    assert describe_cpu(info(GRAVITON3, "aarch64")).startswith("aarch64 (arm); neon sve bf16 i8mm (flags from /proc/cpuinfo)")
    assert "AMD EPYC 9R14" in describe_cpu(info(EPYC_AVX512_BF16))


def test_a_job_that_names_a_dtype_gets_it_whatever_the_processor(monkeypatch):
    monkeypatch.setattr(cpu_features, "detect_cpu", lambda: info(EPYC_AVX2))
    assert embedded_dtype("auto").dtype == "float32"
    assert embedded_dtype("bfloat16").dtype == "bfloat16"
    with pytest.raises(ValueError, match="float16"):
        embedded_dtype("float16")


def test_engine_settings_run_and_store_the_model_in_the_chosen_dtype(monkeypatch, tmp_path):
    prepared = []
    monkeypatch.setattr(embedded, "prepare_embedded_model", lambda key, dtype: prepared.append(dtype) or tmp_path / dtype)
    monkeypatch.setattr(cpu_features, "detect_cpu", lambda: info(EPYC_AVX2))
    settings = EmbeddedEngine().start_settings(EmbeddedModel())
    assert settings["engine_kwargs"]["dtype"] == "float32" and settings["model_source"].endswith("float32") and prepared == ["float32"]
    assert EmbeddedEngine().start_settings(EmbeddedModel(dtype="bfloat16"))["engine_kwargs"]["dtype"] == "bfloat16"
    # A vLLM model on CPU gets the same choice, unless its engine_kwargs name one.
    monkeypatch.setattr(vllm, "detect_cpu", lambda: info(EPYC_AVX2))
    assert VllmEngine().start_settings(VllmModel(engine="vllm", model="org/m", gpus_per_replica=0))["engine_kwargs"]["dtype"] == "float32"
    named = VllmModel(engine="vllm", model="org/m", gpus_per_replica=0, engine_kwargs={"dtype": "bfloat16"})
    assert VllmEngine().start_settings(named)["engine_kwargs"]["dtype"] == "bfloat16"
    assert "dtype" not in VllmEngine().start_settings(VllmModel(engine="vllm", model="org/m"))["engine_kwargs"]


def test_models_list_prints_the_processor_and_the_dtype_chosen_with_why(monkeypatch, capsys):
    from synthmix.pipeline.cli.main import main

    monkeypatch.setattr(cpu_features, "detect_cpu", lambda: info(EPYC_AVX2))
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("processor: AMD EPYC 7B12 (x86); avx2 fma") and "torch dispatches to" in lines[0]
    assert lines[1].startswith("embedded models with dtype auto run in float32: the processor has no bfloat16 arithmetic")
    assert any(line.startswith("embedded") and "smollm2-135m: float32" in line for line in lines[2:])
