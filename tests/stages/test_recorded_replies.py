"""The recorded replies the parsing tests replay are the model's answers to the prompts as they are now."""

from synthmix.pipeline.llm.prompts import load_prompt
from tests.stages.record_replies import COMMAND, rendered_stages
from tests.stages.synthesis_rows import INPUTS, RECORDED


def test_every_recorded_reply_answers_the_current_template() -> None:
    recorded = RECORDED["recorded"]["templates"]
    changed = {template: sha for template, sha in recorded.items() if load_prompt(template).sha256 != sha}
    assert not changed, f"templates {sorted(changed)} changed since tests/stages/recorded/synthesis_replies.json was recorded; re-record: {COMMAND}"


def test_every_input_has_a_recorded_reply_to_the_request_rendered_now() -> None:
    for stage, (_, rendered) in rendered_stages(INPUTS).items():
        recorded = {entry["id"]: entry["template_id"] for entry in RECORDED[stage]}
        rendered_now = {row["id"]: row["prompt_info"] for row in rendered.select(["id", "prompt_info"]).to_pylist()}
        assert set(recorded) == set(rendered_now), f"{stage}: inputs.json and the recording differ; re-record: {COMMAND}"
        for row_id, info in rendered_now.items():
            assert f'"template_id": "{recorded[row_id]}"' in info, f"{stage} row {row_id} renders another template now; re-record: {COMMAND}"
