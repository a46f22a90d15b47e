"""Model specs: engine choice, unknown keys, and the checks that run before any engine starts."""

import pytest
from pydantic import TypeAdapter, ValidationError

from synthmix.pipeline.llm.engines import ModelSpec, check_model_spec, check_models
from synthmix.pipeline.llm.engines.embedded import EmbeddedEngine, EmbeddedModel
from synthmix.pipeline.llm.engines.openai import OpenAIModel
from synthmix.pipeline.llm.engines.vllm import VllmModel
from synthmix.pipeline.llm.engines.vllm_runtime import RESERVED_CPUS_ENV
from synthmix.pipeline.llm.models import ModelSpecError

SPEC = TypeAdapter(ModelSpec)
CPU_ONLY = {"CPU": 2.0, "memory": 1e10}


def test_a_spec_without_engine_is_the_embedded_model():
    assert isinstance(SPEC.validate_python({}), EmbeddedModel)


def test_engine_selects_the_spec_class():
    assert isinstance(SPEC.validate_python({"engine": "vllm", "model": "org/name"}), VllmModel)
    spec = SPEC.validate_python({"engine": "openai", "base_url": "http://127.0.0.1:8000/v1", "model": "m"})
    assert isinstance(spec, OpenAIModel)


def test_unknown_engine_names_the_engines_there_are():
    with pytest.raises(ValidationError, match="'embedded', 'vllm', 'openai'"):
        SPEC.validate_python({"engine": "tgi"})


def test_unknown_key_is_an_error():
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        SPEC.validate_python({"engine": "vllm", "model": "org/name", "tensor_paralel": 2})


def test_missing_model_directory_is_reported_with_its_path(tmp_path):
    missing = tmp_path / "no-such-model"
    spec = VllmModel(engine="vllm", model=str(missing), gpus_per_replica=0)
    with pytest.raises(ModelSpecError, match=f"model directory {missing} does not exist"):
        check_model_spec("big", spec, CPU_ONLY)


def test_directory_without_config_json_is_not_a_model(tmp_path):
    spec = VllmModel(engine="vllm", model=str(tmp_path), gpus_per_replica=0)
    with pytest.raises(ModelSpecError, match="no config.json"):
        check_model_spec("big", spec, CPU_ONLY)


def test_gpu_asked_where_the_cluster_has_none_is_an_error():
    spec = VllmModel(engine="vllm", model="org/name", gpus_per_replica=2)
    with pytest.raises(ModelSpecError, match="asks for 2 GPU\\(s\\) per replica, but the Ray cluster has 0"):
        check_model_spec("big", spec, CPU_ONLY)


def test_gpu_model_passes_on_a_cluster_with_enough_gpus():
    spec = VllmModel(engine="vllm", model="org/name", gpus_per_replica=2)
    check_model_spec("big", spec, {"CPU": 16.0, "GPU": 8.0})


def test_unset_api_key_variable_is_an_error(monkeypatch):
    monkeypatch.delenv("SYNTHMIX_TEST_KEY", raising=False)
    spec = OpenAIModel(engine="openai", base_url="https://api.example/v1", model="m", api_key_env="SYNTHMIX_TEST_KEY")
    with pytest.raises(ModelSpecError, match="SYNTHMIX_TEST_KEY"):
        check_models({"hosted": spec}, CPU_ONLY)


def test_base_url_must_be_http():
    spec = OpenAIModel(engine="openai", base_url="127.0.0.1:8000", model="m")
    with pytest.raises(ModelSpecError, match="not an http\\(s\\) URL"):
        check_model_spec("local", spec, CPU_ONLY)


def test_vllm_spec_uses_one_tensor_parallel_rank_per_gpu():
    assert VllmModel(engine="vllm", model="org/name", gpus_per_replica=4).tensor_parallel_size == 4
    assert VllmModel(engine="vllm", model="org/name", gpus_per_replica=0).tensor_parallel_size == 1


def test_embedded_engines_use_every_core_unless_told_to_keep_some_free():
    # vLLM keeps one core free by default, which halves generation on 2 cores (EmbeddedModel).
    assert EmbeddedEngine().start_settings(EmbeddedModel())["env"][RESERVED_CPUS_ENV] == "0"
    assert EmbeddedEngine().start_settings(EmbeddedModel(reserved_cpus=2))["env"][RESERVED_CPUS_ENV] == "2"
