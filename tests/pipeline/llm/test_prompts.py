"""Prompt template files: front matter, rendering to chat messages, hashes and errors."""

import hashlib

import pytest

from synthmix.pipeline.llm.prompts import PromptError, list_prompts, load_prompt

TEMPLATE = """---
id: synthesize/questions
version: 2
stage: synthesize
domain: science
schema:
  type: object
  properties: {questions: {type: array, items: {type: string}}}
  required: [questions]
---
{% block system %}You write exam questions.{% endblock %}
{% block user %}Document:
{{ text }}{% endblock %}
"""


@pytest.fixture
def root(tmp_path):
    (tmp_path / "synthesize").mkdir()
    (tmp_path / "synthesize" / "questions.j2").write_text(TEMPLATE)
    return tmp_path


def test_render_gives_system_then_user_message(root):
    messages = load_prompt("synthesize/questions", root).render(text="Water boils at 100 C.")
    assert messages == [
        {"role": "system", "content": "You write exam questions."},
        {"role": "user", "content": "Document:\nWater boils at 100 C."},
    ]


def test_metadata_and_hash_of_file_bytes_are_exposed(root):
    template = load_prompt("synthesize/questions", root)
    assert (template.id, template.version, template.stage, template.domain) == ("synthesize/questions", 2, "synthesize", "science")
    assert template.schema["required"] == ["questions"]
    assert template.sha256 == hashlib.sha256(TEMPLATE.encode()).hexdigest()
    assert template.provenance() == {"template_id": "synthesize/questions", "template_version": 2, "template_sha256": template.sha256}


def test_missing_variable_is_an_error_naming_it(root):
    with pytest.raises(PromptError, match="'text' is undefined"):
        load_prompt("synthesize/questions", root).render(txt="typo")


def test_unknown_id_lists_available_ids(root):
    with pytest.raises(PromptError, match="available ids: synthesize/questions"):
        load_prompt("synthesize/question", root)


def test_front_matter_id_must_match_the_path(root):
    (root / "synthesize" / "moved.j2").write_text(TEMPLATE)
    with pytest.raises(PromptError, match="make them equal"):
        load_prompt("synthesize/moved", root)


def test_invalid_schema_is_rejected_at_load(root):
    (root / "synthesize" / "bad.j2").write_text(TEMPLATE.replace("synthesize/questions", "synthesize/bad").replace("type: object", "type: 12"))
    with pytest.raises(PromptError, match="not a valid JSON schema"):
        load_prompt("synthesize/bad", root)


def test_template_without_user_block_is_rejected(root):
    (root / "synthesize" / "nouser.j2").write_text("---\nid: synthesize/nouser\nversion: 1\nstage: synthesize\n---\nhello\n")
    with pytest.raises(PromptError, match="no {% block user %}"):
        load_prompt("synthesize/nouser", root)


def test_file_without_front_matter_is_rejected(root):
    (root / "synthesize" / "plain.j2").write_text("{% block user %}hi{% endblock %}")
    with pytest.raises(PromptError, match="must start with a '---' line"):
        load_prompt("synthesize/plain", root)


def test_list_prompts_finds_every_template(root):
    (root / "answer").mkdir()
    (root / "answer" / "direct.j2").write_text("x")
    assert list_prompts(root) == ["answer/direct", "synthesize/questions"]
