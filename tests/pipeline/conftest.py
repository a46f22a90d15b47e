"""Fixtures the pipeline tests share by name: the real tokenizers (tests/pipeline/corpus.py)."""

from tests.pipeline.corpus import cl100k, hunyuan

__all__ = ["cl100k", "hunyuan"]
