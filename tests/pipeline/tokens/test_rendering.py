import pyarrow as pa
import pytest

from synthmix.pipeline.tokens.rendering import ChatFormat, RenderConfig, encode_marker, render_table
from synthmix.pipeline.tokens.shards import SHARD_SCHEMA
from tests.pipeline.corpus import CHINESE, WITH_SPECIAL_STRINGS, sample_table


def one_sample(instruction: str, answer: str) -> pa.Table:
    return pa.table(
        {
            "id": ["r1"],
            "seed_id": ["s1"],
            "source": ["pydoc"],
            "domain": ["general"],
            "instruction": [instruction],
            "answer": [answer],
        }
    )


def test_plain_template_is_instruction_then_answer_between_document_ids(hunyuan):
    table = render_table(one_sample("Translate: " + CHINESE, "Done."), hunyuan, RenderConfig())
    ids = table.column("input_ids")[0].as_py()
    assert ids[0] == hunyuan.bos_id and ids[-1] == hunyuan.eos_id
    assert hunyuan.decode(ids[1:-1]) == "Translate: " + CHINESE + "\n\nDone."
    assert table.column("num_tokens")[0].as_py() == len(ids)
    assert table.column("loss_mask")[0].as_py() is None


def test_hunyuan_chat_uses_its_control_tokens_and_masks_the_prompt(hunyuan):
    config = RenderConfig(template="chat", chat_format="hunyuan", loss_mask=True)
    table = render_table(one_sample("What is 2+2?", "4"), hunyuan, config)
    ids = table.column("input_ids")[0].as_py()
    assert hunyuan.decode(ids) == "<|startoftext|>What is 2+2?<|extra_0|>4<|eos|><|endoftext|>"
    assert ids[0] == 127958 and ids.count(127958) == 1  # the format's opening is the document start
    answer = hunyuan.encode_batch(["4"])[0]
    mask = table.column("loss_mask")[0].as_py()
    assert mask == [0] * (len(ids) - len(answer) - 2) + [1] * (len(answer) + 2)


def test_plain_loss_mask_covers_answer_and_end_of_document(cl100k):
    table = render_table(one_sample("Question?", "An answer."), cl100k, RenderConfig(loss_mask=True))
    ids = table.column("input_ids")[0].as_py()
    mask = table.column("loss_mask")[0].as_py()
    targets = [token for token, keep in zip(ids, mask, strict=True) if keep]
    assert cl100k.decode(targets) == "An answer.<|endoftext|>"


def test_seed_documents_render_as_plain_text_with_null_mask(hunyuan):
    batch = sample_table(6, with_text_rows=True)
    table = render_table(batch, hunyuan, RenderConfig(template="chat", loss_mask=True))
    assert table.schema == SHARD_SCHEMA
    text_row = 2
    ids = table.column("input_ids")[text_row].as_py()
    assert hunyuan.decode(ids) == "<|startoftext|>" + batch.column("text")[text_row].as_py() + "<|endoftext|>"
    assert table.column("loss_mask")[text_row].as_py() is None
    assert table.column("synthetic").to_pylist() == [True, True, False, True, True, False]
    assert table.column("id").to_pylist() == batch.column("id").to_pylist()
    assert table.column("meta").to_pylist() == batch.column("meta").to_pylist()


def test_control_strings_inside_samples_stay_text(hunyuan):
    table = render_table(one_sample(WITH_SPECIAL_STRINGS, WITH_SPECIAL_STRINGS), hunyuan, RenderConfig())
    ids = table.column("input_ids")[0].as_py()
    assert ids.count(hunyuan.eos_id) == 1 and ids[-1] == hunyuan.eos_id
    assert ids.count(hunyuan.bos_id) == 1 and ids[0] == hunyuan.bos_id


def test_custom_chat_format_mixes_control_tokens_and_text(hunyuan):
    ids = encode_marker("<|startoftext|>User: ", hunyuan)
    assert ids == [127958, *hunyuan.encode_batch(["User: "])[0]]
    plain = ChatFormat(user_prefix="Q: ", user_suffix="\n", assistant_prefix="A: ", assistant_suffix="")
    table = render_table(one_sample("Why?", "Because."), hunyuan, RenderConfig(template="chat", chat_format=plain))
    assert hunyuan.decode(table.column("input_ids")[0].as_py()) == "<|startoftext|>Q: Why?\nA: Because.<|endoftext|>"


def test_chat_format_foreign_to_the_tokenizer_is_refused(hunyuan):
    with pytest.raises(ValueError, match="im_start"):
        render_table(one_sample("a", "b"), hunyuan, RenderConfig(template="chat", chat_format="chatml"))


def test_rows_without_lineage_are_refused(hunyuan):
    with pytest.raises(ValueError, match="seed_id"):
        render_table(pa.table({"id": ["x"], "source": ["s"], "domain": ["d"], "text": ["t"]}), hunyuan, RenderConfig())


def test_rows_without_any_text_are_refused(hunyuan):
    batch = one_sample("a", "b").set_column(5, "answer", pa.array([None], pa.string()))
    with pytest.raises(ValueError, match="neither instruction"):
        render_table(batch, hunyuan, RenderConfig())
