"""Prompt templates: files under `prompts/<stage>/<name>.j2`, never text in Python.

A template file starts with a YAML front-matter block, then Jinja2 with two blocks that become
the chat messages:

    ---
    id: synthesize/web_questions     # = the path under prompts/ without .j2
    version: 1                       # bump when the wording changes on purpose
    stage: synthesize
    domain: general
    description: questions a reader of a web page would ask
    schema:                          # optional: JSON schema of the expected output
      type: object
      properties: {questions: {type: array, items: {type: string}}}
      required: [questions]
    ---
    {% block system %}You write questions ...{% endblock %}
    {% block user %}Document:
    {{ text }}{% endblock %}

The `system` block is optional. Undefined variables are errors, not empty strings. A rendered
row records `id`, `version` and `sha256` (of the file's bytes), so a wording change changes
the stage fingerprint even when someone forgets to bump `version`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import synthmix.prompts as _prompts_package

# The `prompts` package's own folder, not a path relative to this file: on a cluster each of our
# packages travels as its own py_module (pipeline/ray_session.py), so `../prompts` beside
# `pipeline/` does not exist there (a submitted quickstart failed on exactly that).
PROMPTS_DIR = Path(_prompts_package.__file__).resolve().parent
TEMPLATE_SUFFIX = ".j2"
FRONT_MATTER_FENCE = "---"


class PromptError(ValueError):
    """A template id that does not exist, or a template file that is malformed."""


class PromptMetadata(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    version: int = Field(ge=1)
    stage: str
    domain: str = "general"
    description: str = ""
    # JSON schema the model's output must satisfy; None for free text.
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")


@dataclass(frozen=True)
class PromptTemplate:
    """One loaded template: metadata, file hash, and the compiled Jinja2 body."""

    id: str
    version: int
    stage: str
    domain: str
    description: str
    schema: dict[str, Any] | None
    sha256: str
    path: Path
    _template: jinja2.Template = field(repr=False, compare=False)

    def render(self, **variables: Any) -> list[dict[str, str]]:
        """The chat messages for one row: an optional system message, then the user message."""
        context = self._template.new_context(variables)
        messages = []
        for role in ("system", "user"):
            block = self._template.blocks.get(role)
            if block is None:
                continue
            try:
                content = "".join(block(context)).strip()
            except jinja2.UndefinedError as error:
                raise PromptError(f"prompt {self.id} ({self.path}) uses a variable that was not passed: {error.message}; passed: {sorted(variables)}") from None
            messages.append({"role": role, "content": content})
        return messages

    def provenance(self) -> dict[str, Any]:
        """What a generated row records about the template that made it."""
        return {"template_id": self.id, "template_version": self.version, "template_sha256": self.sha256}


def list_prompts(root: Path = PROMPTS_DIR) -> list[str]:
    """Ids of every template under `root`, sorted."""
    return sorted(_template_id(path, root) for path in root.rglob(f"*{TEMPLATE_SUFFIX}"))


def load_prompt(template_id: str, root: Path = PROMPTS_DIR) -> PromptTemplate:
    """Load `root/<template_id>.j2`; raises `PromptError` naming the available ids when unknown."""
    path = root / f"{template_id}{TEMPLATE_SUFFIX}"
    if not path.is_file():
        available = ", ".join(list_prompts(root)) or "none"
        raise PromptError(f"unknown prompt template {template_id!r}: no file {path}; available ids: {available}")
    raw = path.read_bytes()
    front_matter, body = _split_front_matter(raw.decode("utf-8"), path)
    try:
        metadata = PromptMetadata(**front_matter)
    except ValidationError as error:
        raise PromptError(f"prompt {path}: bad front matter: {error}") from None
    if metadata.id != template_id:
        raise PromptError(
            f"prompt {path}: front matter says id {metadata.id!r} but the file's id is {template_id!r}; "
            "make them equal (the id is the path under prompts/ without .j2)"
        )
    if metadata.schema_ is not None:
        _check_schema(metadata.schema_, path)
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    try:
        template = environment.from_string(body)
    except jinja2.TemplateSyntaxError as error:
        raise PromptError(f"prompt {path}, line {error.lineno} of the body: {error.message}") from None
    if "user" not in template.blocks:
        raise PromptError(f"prompt {path} has no {{% block user %}}...{{% endblock %}}; every template needs one")
    return PromptTemplate(
        id=metadata.id,
        version=metadata.version,
        stage=metadata.stage,
        domain=metadata.domain,
        description=metadata.description,
        schema=metadata.schema_,
        sha256=hashlib.sha256(raw).hexdigest(),
        path=path,
        _template=template,
    )


def _template_id(path: Path, root: Path) -> str:
    return path.relative_to(root).with_suffix("").as_posix()


def _split_front_matter(text: str, path: Path) -> tuple[dict[str, Any], str]:
    lines = text.split("\n")
    if not lines or lines[0].strip() != FRONT_MATTER_FENCE:
        raise PromptError(f"prompt {path} must start with a '---' line opening its YAML front matter (id, version, stage)")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == FRONT_MATTER_FENCE)
    except StopIteration:
        raise PromptError(f"prompt {path}: the front matter opened on line 1 is never closed by a '---' line") from None
    try:
        front_matter = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as error:
        raise PromptError(f"prompt {path}: front matter is not valid YAML: {error}") from None
    if not isinstance(front_matter, dict):
        raise PromptError(f"prompt {path}: front matter must be a mapping of keys (id, version, stage, ...)")
    return front_matter, "\n".join(lines[end + 1 :])


def _check_schema(schema: dict[str, Any], path: Path) -> None:
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as error:
        raise PromptError(f"prompt {path}: `schema` is not a valid JSON schema: {error.message}") from None
