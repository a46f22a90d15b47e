"""A bad row becomes a reject, never a crash: random rows through every stage's batch path.

Text values are drawn from None, empty, blank, huge (hundreds of thousands of characters) and
non-UTF-8-ish strings (mojibake, replacement characters, NULs, BOMs, control characters), beside
ordinary text. Model stages render their requests, which go through `apply_llm`'s own batch
steps (`expand_requests`, prompts counted in a small tokenizer's tokens, `generate_on_replicas`,
`finish_rows`) to a real `Replica` driving a scripted engine (tests/pipeline/fake_engine.py) that
refuses, answers nothing, ends unfinished, writes garbage or a reply fitting the schema. Every
batch then goes through the runner's own commit path (`process_batch`: transform, lineage check,
split of rejects). Nothing may raise; every row is kept or rejected with a known reason; a kept
row has the value its stage makes; no prompt counted too long reaches the engine.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthmix.pipeline import contracts
from synthmix.pipeline.config import parse_job
from synthmix.pipeline.contracts import ANSWER_FIELDS, INSTRUCTION_FIELDS, RejectReason, content_id
from synthmix.pipeline.graph import build_graph, with_input_schema
from synthmix.pipeline.llm import engine_pool, processors
from synthmix.pipeline.llm.engine_replica import Replica, ReplicaSettings
from synthmix.pipeline.llm.models import SamplingParams
from synthmix.pipeline.llm.prompt_length import PromptLimit
from synthmix.pipeline.unit_commit import process_batch
from synthmix.stages.gather_samples import gather_group
from synthmix.stages.registry import STAGES
from tests.pipeline.fake_engine import FITTING, REFUSE, UNFINISHED, ScriptedBackend
from tests.pipeline.llm.test_llm import expand
from tests.pipeline.small_tokenizer import save_small_tokenizer

JOB = Path(__file__).resolve().parents[2] / "jobs" / "quickstart.yaml"
# The rendered prompts' limit in the small tokenizer's tokens: a huge value never fits.
MAX_MODEL_LEN = 4000
REASONS = {reason.value for reason in RejectReason}

ODD_TEXTS = [
    " ",
    "\n\t \n",
    "\x00\x00",
    "\ufffd\ufffd\ufffd",
    "Ã©tÃ© naÃ¯ve cafÃ©",  # UTF-8 read as Latin-1
    "\ufeffWhat is 2 + 2?",
    "\u202eRTL override\u202c and \u200bzero width",
    "\x1b[31mred\x1b[0m \x07",
    "```python\nprint(1)\n```",
    "{not json",
    "What is 12 times 7?",
    "\\boxed{}",
]
text_values = st.one_of(
    st.none(),
    st.just(""),
    st.sampled_from(ODD_TEXTS),
    st.text(max_size=80),
    st.binary(max_size=60).map(lambda raw: raw.decode("latin-1")),
    st.binary(max_size=60).map(lambda raw: raw.decode("utf-8", errors="replace")),
    st.tuples(st.sampled_from(["word ", "数", "\ufffd", "a" * 7]), st.integers(10_000, 60_000)).map(lambda piece: piece[0] * piece[1]),
)
replies = st.one_of(st.sampled_from([REFUSE, UNFINISHED, FITTING, FITTING, None, "", "   "]), text_values)
domains = st.sampled_from(["general", "math", "code", "science", None])
langs = st.sampled_from(["en", "zh", None, "xx"])


def identity(index: int) -> dict:
    row_id = content_id(f"row-{index}")
    return {contracts.ID: row_id, contracts.SEED_ID: f"seed-{index}", contracts.PARENT_ID: f"parent-{index}", contracts.SOURCE: "test"}


@st.composite
def seed_records(draw) -> list[dict]:
    count = draw(st.integers(1, 5))
    return [
        {
            contracts.ID: f"file.jsonl:{index}",
            contracts.SOURCE_ID: draw(st.one_of(st.none(), st.text(max_size=5))),
            contracts.ORIGIN: json.dumps({"file": "file.jsonl", "line": index}),
            contracts.SOURCE: "test",
            contracts.DOMAIN: draw(domains),
            contracts.KIND: draw(st.sampled_from(["web", "code", "qa", "book"])),
            contracts.LANG: draw(langs),
            "error_reason": None,
            "error_detail": None,
            contracts.TEXT: draw(text_values) or "",
        }
        for index in range(count)
    ]


@st.composite
def seed_rows(draw) -> list[dict]:
    count = draw(st.integers(1, 5))
    return [
        {
            **identity(index),
            contracts.DOMAIN: draw(domains),
            contracts.KIND: draw(st.sampled_from(["web", "code", "qa", "book"])),
            contracts.LANG: draw(langs),
            contracts.TEXT: draw(text_values),
            contracts.SOURCE_ID: None,
            contracts.ORIGIN: None,
        }
        for index in range(count)
    ]


@st.composite
def instruction_rows(draw) -> list[dict]:
    count = draw(st.integers(1, 5))
    return [
        {
            **identity(index),
            contracts.DOMAIN: draw(domains),
            contracts.LANG: draw(langs),
            contracts.INSTRUCTION: draw(text_values),
            contracts.TASK_TYPE: draw(st.sampled_from(["question", "math", None])),
            contracts.OBJECTIVE: draw(st.one_of(st.booleans(), st.none())),
            contracts.EVOLUTION_OP: "",
            contracts.EVOLUTION_DEPTH: draw(st.one_of(st.none(), st.integers(0, 3))),
            contracts.META: draw(st.one_of(st.none(), st.just("{}"))),
            contracts.SOURCE_ID: None,
            contracts.ORIGIN: None,
        }
        for index in range(count)
    ]


@st.composite
def answer_rows(draw) -> list[dict]:
    count = draw(st.integers(1, 5))
    rows = []
    for index in range(count):
        samples = draw(st.one_of(st.none(), st.lists(text_values, max_size=4)))
        rows.append(
            {
                **identity(index),
                contracts.DOMAIN: draw(domains),
                contracts.LANG: draw(langs),
                contracts.INSTRUCTION: draw(text_values),
                contracts.ANSWER: draw(text_values),
                contracts.SAMPLES: samples,
                contracts.OBJECTIVE: draw(st.one_of(st.booleans(), st.none())),
                contracts.META: draw(st.one_of(st.none(), st.just("{}"))),
                contracts.SOURCE_ID: None,
                contracts.ORIGIN: None,
                contracts.PROBE: None,
                contracts.TESTS: draw(st.one_of(st.none(), st.just(""), st.just("assert True"))),
                contracts.CRITIQUE_SCORE: draw(st.one_of(st.none(), st.floats(1, 10))),
            }
        )
    return rows


SEED_FIELDS = (
    *INSTRUCTION_FIELDS[:3],
    pa.field(contracts.SOURCE, pa.string()),
    pa.field(contracts.DOMAIN, pa.string()),
    pa.field(contracts.KIND, pa.string()),
    pa.field(contracts.LANG, pa.string()),
    pa.field(contracts.TEXT, pa.string()),
    pa.field(contracts.SOURCE_ID, pa.string()),
    pa.field(contracts.ORIGIN, pa.string()),
)
PAIR_FIELDS = (
    *ANSWER_FIELDS,
    pa.field(contracts.PROBE, pa.string()),
    pa.field(contracts.TESTS, pa.string()),
    pa.field(contracts.CRITIQUE_SCORE, pa.float64()),
)


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    """Every stage of the quickstart job (verify_code among them), built as the runner builds them."""
    raw = yaml.safe_load(JOB.read_text(encoding="utf-8"))
    assert "verify_code" in raw["stages"]
    raw["verify_code"] = {"workers": 1}  # without the quickstart's test writer: no model to start
    job = parse_job(raw, source=str(JOB))
    return {node.name: node for node in build_graph(job, STAGES, run_dir=tmp_path_factory.mktemp("run"), job_dir=JOB.parent)}


@pytest.fixture(scope="module")
def small_tokenizer(tmp_path_factory) -> str:
    return str(save_small_tokenizer(tmp_path_factory.mktemp("tokenizer")))


def stage_of(stages, name: str, fields) -> object:
    stage = with_input_schema(stages[name], pa.schema(fields), None)
    stage.setup_on_driver()
    stage.setup()
    return stage


def generate(stage, rendered: pa.Table, script: list, tokenizer: str, monkeypatch) -> tuple[pa.Table, ScriptedBackend]:
    """apply_llm's batch steps, in order, with a real Replica on the scripted engine."""
    backend = None

    def scripted(settings):
        nonlocal backend
        backend = ScriptedBackend(settings, script=script)
        return backend

    replica = Replica(ReplicaSettings(model_name="embedded", model_source="scripted", engine_kwargs={}), scripted)
    monkeypatch.setattr(engine_pool, "send_batch", lambda requests, **kwargs: asyncio.run(replica.generate(requests)))
    defaults = processors.merge_sampling(SamplingParams(), stage.params.sampling)
    prepared = expand(rendered, defaults=defaults, limit=PromptLimit("embedded", tokenizer, MAX_MODEL_LEN))
    generated = engine_pool.generate_on_replicas(prepared, replicas=[None], model_name="embedded", messages_column=contracts.MESSAGES, batch_size=4)
    return processors.finish_rows(generated, model_name="embedded", read_replies=engine_pool.read_replica_replies), backend


def check_outcome(stage, batch: pa.Table, product: tuple[str, ...] = ()) -> None:
    """The runner's commit path on `batch`; every row kept or rejected with a known reason."""
    done = process_batch(stage, batch)
    reasons = done.rejected[contracts.REJECT_REASON].to_pylist()
    assert set(reasons) <= REASONS, reasons
    assert all(done.rejected[contracts.REJECT_DETAIL].to_pylist()) or not reasons, "a reject without a detail"
    if stage.lineage.value == "same_row":
        assert done.accepted.num_rows + done.rejected.num_rows == batch.num_rows
    for name in product:
        kept = done.accepted[name].to_pylist()
        assert all(isinstance(value, str) and value.strip() for value in kept), f"kept rows without {name}: {kept[:3]!r}"


SETTINGS = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(records=seed_records())
def test_seeds_keep_or_reject_bad_records(stages, records):
    stage = stage_of(stages, "seeds", ())
    check_outcome(stage, pa.Table.from_pylist(records), product=(contracts.TEXT,))


MODEL_STAGES = [
    ("synthesize", SEED_FIELDS, seed_rows(), (contracts.INSTRUCTION,)),
    ("evolve", INSTRUCTION_FIELDS, instruction_rows(), (contracts.INSTRUCTION,)),
    ("answer", INSTRUCTION_FIELDS, instruction_rows(), (contracts.INSTRUCTION, contracts.ANSWER)),
    ("critique", ANSWER_FIELDS, answer_rows(), (contracts.ANSWER, contracts.CRITIQUE)),
]


@pytest.mark.parametrize(("name", "fields", "rows", "product"), MODEL_STAGES, ids=[stage[0] for stage in MODEL_STAGES])
def test_model_stages_keep_or_reject_bad_rows_and_replies(stages, small_tokenizer, monkeypatch, name, fields, rows, product):
    stage = stage_of(stages, name, fields)

    @SETTINGS
    @given(rows=rows, script=st.lists(replies, min_size=1, max_size=6))
    def check(rows, script):
        batch = pa.Table.from_pylist(rows, schema=pa.schema(fields))
        if name == "answer":
            batch = stage.expand_samples(batch)  # one work row per sample, as the runner's expand_input makes them
        if name == "synthesize":
            stage.plan_task_types(batch.to_pylist())  # the driver plans every seed's task types before the plan runs
        generated, backend = generate(stage, stage.render_requests(batch), script, small_tokenizer, monkeypatch)
        assert_too_long_never_sent(generated, backend)
        check_outcome(stage, stage_batch(generated), product=product)

    check()


@SETTINGS
@given(rows=answer_rows())
def test_gather_samples_groups_bad_answers(rows):
    group = pa.Table.from_pylist(
        [{**row, contracts.PARENT_ID: "instruction", contracts.SAMPLE_INDEX: index} for index, row in enumerate(rows)],
        schema=pa.schema([*PAIR_FIELDS, pa.field(contracts.SAMPLE_INDEX, pa.int32())]),
    )
    gathered = gather_group(group)
    assert gathered.num_rows == 1 and len(gathered[contracts.SAMPLES][0].as_py()) == len(rows)


@SETTINGS
@given(rows=answer_rows())
def test_consistency_keeps_or_rejects_bad_pairs(stages, rows):
    stage = stage_of(stages, "consistency", PAIR_FIELDS)
    check_outcome(stage, pa.Table.from_pylist(rows, schema=pa.schema(PAIR_FIELDS)), product=(contracts.ANSWER,))


@pytest.mark.parametrize("name", ["quality", "verify_code", "decontaminate", "probe_exit", "tokenize"])
def test_filtering_stages_keep_or_reject_bad_pairs(stages, name):
    stage = stage_of(stages, name, PAIR_FIELDS)

    @SETTINGS
    @given(rows=answer_rows())
    def check(rows):
        check_outcome(stage, pa.Table.from_pylist(rows, schema=pa.schema(PAIR_FIELDS)))

    check()


def stage_batch(generated: pa.Table) -> pa.Table:
    """What the runner's commit step receives: apply_llm's rows, internal columns gone."""
    return generated.select([name for name in generated.column_names if not name.startswith("__")])


def assert_too_long_never_sent(generated: pa.Table, backend: ScriptedBackend | None) -> None:
    sent = {json.dumps(messages, sort_keys=True) for messages in (backend.received if backend else [])}
    reasons = generated[contracts.LLM_ERROR_REASON].to_pylist()
    for chat, reason in zip(generated[contracts.MESSAGES].to_pylist(), reasons, strict=True):
        if reason == RejectReason.PROMPT_TOO_LONG:
            assert json.dumps(json.loads(chat), sort_keys=True) not in sent, "a prompt counted too long was sent to the engine"


def test_the_small_tokenizer_counts_a_huge_prompt_over_the_limit(small_tokenizer):
    from synthmix.pipeline.llm.prompt_length import count_prompt_tokens

    assert count_prompt_tokens(small_tokenizer, [{"role": "user", "content": "word " * MAX_MODEL_LEN}]) > MAX_MODEL_LEN
    assert count_prompt_tokens(small_tokenizer, [{"role": "user", "content": "two words"}]) < 10
