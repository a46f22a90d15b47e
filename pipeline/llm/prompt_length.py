"""Whether a rendered chat fits the model, counted in the model's own tokens before it is sent.

An engine refuses a prompt of `max_model_len` tokens or more (vLLM: "This model's maximum
context length is 2048 tokens ..."); a server answers 400. Counted here, with the tokenizer and
chat template the engine uses, such a row becomes a `prompt_too_long` reject that says how many
tokens it had and how many the model takes, it is never sent, and the rest of the stage goes on.

Where the count is possible (each engine's `prompt_limit`, `synthmix.pipeline.llm.engines`):
- `embedded`: the converted model directory (tokenizer files beside the weights) and `max_model_len`;
- `vllm` with a local model directory: its tokenizer, and `engine_kwargs.max_model_len` or else
  the context length its `config.json` declares (what vLLM derives when none is given);
- `openai` with `tokenizer` (a local directory holding the served model's tokenizer files):
  `max_model_len`, or that directory's `config.json`.
Elsewhere (a hub id, a server without `tokenizer`) nothing is counted, and the engine's or
server's refusal stays the row's `llm_error`.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# config.json keys that bound a model's context, the ones vLLM reads for a plain decoder; the
# smallest present is the limit.
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "max_sequence_length", "max_seq_length", "seq_len")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


@dataclass(frozen=True)
class PromptLimit:
    """How to count a prompt for one model, and the most tokens the model takes (prompt and reply)."""

    model_name: str
    tokenizer: str  # a local directory with tokenizer files and the chat template
    max_model_len: int

    def problem(self, prompt_tokens: int) -> str | None:
        """None when the prompt fits, else the reject detail: its count and the limit."""
        if prompt_tokens < self.max_model_len:
            return None
        return (
            f"the prompt has {prompt_tokens} tokens; model '{self.model_name}' takes at most {self.max_model_len - 1} "
            f"(max_model_len {self.max_model_len}, one token kept for the reply)"
        )


def limit_in_directory(model_name: str, directory: Path | None, limit: int | None) -> PromptLimit | None:
    """The limit of a model whose tokenizer files are in `directory`; None without a directory
    holding tokenizer files, or without a limit (engines' `prompt_limit` call this)."""
    if directory is None or not limit or not any((directory / name).is_file() for name in _TOKENIZER_FILES):
        return None
    return PromptLimit(model_name, str(directory), int(limit))


def count_prompt_tokens(tokenizer: str, messages: list[dict[str, str]]) -> int | None:
    """Tokens of the chat as the engine sees it: the chat template applied with the generation
    prompt (as `synthmix.pipeline.llm.engine_replica.VllmBackend` does), then encoded with special tokens.
    None for a tokenizer without a chat template: the engine cannot render the chat either, and
    says so in the row's `llm_error`."""
    loaded = _load_tokenizer(tokenizer)
    if getattr(loaded, "chat_template", None) is None:
        return None
    prompt = loaded.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return len(loaded(prompt, add_special_tokens=True)["input_ids"])


@functools.lru_cache(maxsize=4)
def _load_tokenizer(directory: str) -> Any:
    """Once per process and directory: transformers' tokenizer, the one vLLM wraps."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(directory)


def local_dir(source: str | None) -> Path | None:
    """`source` as a local directory, or None where it names none (a hub id, a URL, nothing)."""
    if not source:
        return None
    path = Path(source).expanduser()
    return path if path.is_dir() else None


def declared_context(directory: Path | None) -> int | None:
    """The context length the model's config.json declares, the smallest of its keys; None without one."""
    if directory is None or not (directory / "config.json").is_file():
        return None
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    config = config.get("text_config", config)
    declared = [config[key] for key in _CONTEXT_KEYS if isinstance(config.get(key), int) and config[key] > 0]
    return min(declared) if declared else None
