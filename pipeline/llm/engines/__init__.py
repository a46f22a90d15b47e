"""The engines a job's models can name, by their `engine:` value, and the one place that finds a
model's engine: `engine_for(spec)`.

Each engine is one module of this package (its spec, checks, resources, prompt limit, start and
send; see `base.Engine`) and one `register(...)` line below. A job's `models:` entry is validated
by the spec of the engine it names (`ModelSpec`): the choice is made when the entry is read, so
an engine registered later (a test's fake engine) is as good as these.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Discriminator, PlainValidator, Tag, TypeAdapter

from synthmix.pipeline.llm.engines.base import Engine
from synthmix.pipeline.llm.engines.embedded import EmbeddedEngine
from synthmix.pipeline.llm.engines.openai import OpenAIEngine
from synthmix.pipeline.llm.engines.vllm import VllmEngine
from synthmix.pipeline.llm.models import ModelSettings, ModelSpecError

# A `models:` entry without `engine:` runs the embedded engine.
DEFAULT_ENGINE = "embedded"

_ENGINES: dict[str, Engine] = {}
_SPEC_ADAPTERS: dict[tuple[str, ...], TypeAdapter] = {}


def register(engine: Engine) -> Engine:
    """Make `engine` available to job files as `engine: <engine.name>`."""
    _ENGINES[engine.name] = engine
    return engine


def engine_names() -> tuple[str, ...]:
    return tuple(_ENGINES)


def engine_for(spec: ModelSettings) -> Engine:
    """The engine that runs `spec` (a validated `models:` entry)."""
    try:
        return _ENGINES[spec.engine]
    except KeyError:
        raise ModelSpecError(f"no engine {spec.engine!r} is registered; choose one of {', '.join(_ENGINES)}") from None


def _engine_of(value: Any) -> str:
    if isinstance(value, Mapping):
        return value.get("engine", DEFAULT_ENGINE)
    return getattr(value, "engine", DEFAULT_ENGINE)


def validate_model_spec(value: Any) -> ModelSettings:
    """One `models:` entry validated by the spec of the engine it names. A discriminated union of
    the registered specs, so errors name the key inside the engine's spec (`models.m.vllm.model`)
    or the engines to choose from."""
    names = engine_names()
    adapter = _SPEC_ADAPTERS.get(names)
    if adapter is None:
        choices = tuple(Annotated[_ENGINES[name].settings, Tag(name)] for name in names)
        adapter = _SPEC_ADAPTERS[names] = TypeAdapter(Annotated[functools.reduce(operator.or_, choices), Discriminator(_engine_of)])
    return adapter.validate_python(value)


# A job's `models:` entry: validated when read (see validate_model_spec), serialised as its spec.
ModelSpec = Annotated[Any, PlainValidator(validate_model_spec)]


def check_model_spec(name: str, spec: ModelSettings, cluster_resources: Mapping[str, float]) -> None:
    """Raise `ModelSpecError` for what would fail at engine start (a missing model directory or
    package, an unset API-key variable, more GPUs per replica than the Ray cluster has).

    `cluster_resources` is `ray.cluster_resources()` of the cluster the job runs on.
    """
    engine_for(spec).check(name, spec, cluster_resources)


def check_models(models: Mapping[str, ModelSettings], cluster_resources: Mapping[str, float]) -> None:
    """`check_model_spec` for every named model."""
    for name, spec in models.items():
        check_model_spec(name, spec, cluster_resources)


register(EmbeddedEngine())
register(VllmEngine())
register(OpenAIEngine())
