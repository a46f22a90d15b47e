"""The dataset card (`README.md`) of a run's exported final pairs: what they are and how they were made.

Everything is read from the run directory: the job it recorded (`job.yaml`), the stage
manifests (funnel, models, prompt hashes, dedup and decontamination figures), `synthmix eval`'s
result where the run has probes, and the mix manifest. The YAML header is made by
`huggingface_hub.DatasetCardData` (licence, languages, task categories, size category, tags and
the `configs:` that `datasets.load_dataset` reads); the prose is Markdown. `card_metadata_problems`
checks the header offline against the vocabularies `datasets` ships, since the Hub's own
check (`DatasetCard.validate`) needs the network.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from synthmix.pipeline import contracts
from synthmix.pipeline.config import JobConfig
from synthmix.pipeline.inspection.eval_view import render_eval
from synthmix.pipeline.inspection.evaluation import evaluate_run
from synthmix.pipeline.inspection.generation_cost import generation_cost
from synthmix.pipeline.inspection.licences import HUB_LICENCE_IDS, Licence, card_licence_fields, model_licence, seed_licence
from synthmix.pipeline.inspection.run_contents import job_stage_kinds, recorded_job, stage_manifest
from synthmix.pipeline.llm.prompts import PromptError, load_prompt
from synthmix.pipeline.storage import parquet_schema, read_parquet
from synthmix.pipeline.store import StageDir

SPLIT = "train"
TASK_CATEGORIES = ["text-generation", "question-answering"]
SIZE_LIMITS = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"),
               (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]  # fmt: skip
DEDUP_KIND = "dedup"
DECONTAMINATE_KIND = "decontaminate"
NOT_MEASURED = "not measured"


def size_category(rows: int) -> str:
    """The Hub's size category for a row count."""
    return next((name for limit, name in SIZE_LIMITS if rows < limit), "1B<n<10B")


def write_dataset_card(run_dir: Path, summary: dict[str, Any], path: Path, seed_licences: dict[str, str]) -> None:
    """Write the card of the exported pairs `summary` describes (see final_pairs.export_final_pairs)."""
    from huggingface_hub import DatasetCard, DatasetCardData

    stages = job_stage_kinds(run_dir)
    manifests = {name: stage_manifest(run_dir, name) or {} for name, _ in stages}
    models = _models(manifests, recorded_job(run_dir))
    sources = summary["rows_by_source"] or _seed_sources(run_dir, stages)
    licences = _licence_rows(models, sources, seed_licences)
    data = DatasetCardData(
        **card_licence_fields([licence for _, licence in licences]),
        language=summary["languages"] or None,
        multilinguality="multilingual" if len(summary["languages"]) > 1 else "monolingual",
        annotations_creators=["machine-generated"],
        language_creators=["machine-generated"],
        source_datasets=["original"],
        task_categories=TASK_CATEGORIES,
        size_categories=[size_category(summary["rows"])],
        pretty_name=f"synthmix {Path(run_dir).name}",
        tags=["synthetic", "synthmix", *sorted(summary["rows_by_domain"])],
        configs=[
            {"config_name": name, "data_files": [{"split": SPLIT, "path": files}], **({"default": True} if index == 0 else {})}
            for index, (name, files) in enumerate(summary["configs"].items())
        ],
    )
    sections = [
        _what_it_is(run_dir, summary),
        _columns(summary["columns"]),
        _licences(licences),
        _funnel(stages, manifests, summary),
        _models_and_prompts(stages, manifests, models),
        _filters(run_dir, stages, manifests),
        _dedup_and_decontamination(stages, manifests),
        _mix(manifests, stages),
        _how_it_was_made(run_dir),
    ]
    card = DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(section for section in sections if section) + "\n")
    card.save(str(path))


def card_metadata_problems(card: Any) -> list[str]:
    """What in a card's YAML the Hub would refuse, checked offline: licence ids, language codes,
    size category, and that every config names its data files (datasets' own parser)."""
    import datasets.utils.metadata as metadata
    from datasets.utils import resources

    vocabulary = Path(resources.__file__).parent
    languages = json.loads((vocabulary / "languages.json").read_text(encoding="utf-8"))
    sizes = json.loads((vocabulary / "size_categories.json").read_text(encoding="utf-8"))
    data = card.data.to_dict()
    problems = []
    licence_ids = data.get("license") or []
    for licence in [licence_ids] if isinstance(licence_ids, str) else licence_ids:
        if licence not in HUB_LICENCE_IDS:
            problems.append(f"license {licence!r} is not a Hub licence id")
    if "other" in licence_ids and not data.get("license_name"):
        problems.append("license 'other' needs a license_name")
    problems += [f"language {code!r} is not a known code" for code in data.get("language") or [] if code not in languages]
    problems += [f"size category {size!r} is unknown" for size in data.get("size_categories") or [] if size not in sizes]
    try:
        configs = metadata.MetadataConfigs.from_dataset_card_data(card.data)
    except ValueError as error:
        problems.append(f"configs: {error}")
    else:
        problems += [f"config {name!r} names no data files" for name, config in configs.items() if not config.get("data_files")]
    return problems


# --- sections -----------------------------------------------------------------------------------
def _what_it_is(run_dir: Path, summary: dict[str, Any]) -> str:
    domains = ", ".join(f"{domain} {rows}" for domain, rows in summary["rows_by_domain"].items())
    configs = ", ".join(f"`{name}`" for name in summary["configs"])
    one = list(summary["configs"])[-1]
    probes = (
        f" {summary['probes_left_out']} probe rows (problems with known answers that measure the filters) were still in that stage and are left out."
        if summary["probes_left_out"]
        else ""
    )
    return (
        f"# synthmix {Path(run_dir).name}\n\n"
        f"{summary['rows']} synthetic instruction-answer pairs made by synthmix from seed documents: "
        f"instructions generated and evolved by a model, answered, then filtered (self-consistency, code tests, critique, quality, "
        f"near-duplicate removal, decontamination). They are the rows of the run's stage `{summary['stage']}`, its last before "
        f"tokenization.{probes}\n\n"
        f"Pairs per domain: {domains}. Languages: {', '.join(summary['languages']) or 'not labelled'}.\n\n"
        f"Configs: {configs} (the first is the default: every domain), one split `{SPLIT}`; rows sorted by `id`.\n\n"
        "```python\nimport datasets\n\n"
        f'pairs = datasets.load_dataset("PATH_OR_REPO")                 # every domain\n'
        f'{one} = datasets.load_dataset("PATH_OR_REPO", "{one}")  # one domain\n```\n\n'
        'To publish this folder: `huggingface_hub.HfApi().upload_folder(folder_path=PATH, repo_id=REPO, repo_type="dataset")`.'
    )


def _columns(exported: dict[str, str]) -> str:
    return "## Columns\n\n" + _table(["column", "what it holds"], [[f"`{name}`", text] for name, text in exported.items()])


def _licence_rows(models: dict[str, dict[str, Any]], rows_by_source: dict[str, int], stated: dict[str, str]) -> list[tuple[str, Licence]]:
    rows = [(f"model `{name}` ({spec['model']})", model_licence(spec["engine"], spec["model"])) for name, spec in models.items()]
    rows += [(f"seeds `{source}` ({count} rows)", seed_licence(source, stated)) for source, count in rows_by_source.items() if source]
    return rows


def _seed_sources(run_dir: Path, stages: list[tuple[str, str]]) -> dict[str, int]:
    """The seed sources of a run whose pairs carry no `source` column: those of its first stage's
    rows (the seeds), counted there; a stage without the column gives none."""
    files = StageDir(run_dir, stages[0][0]).part_files() if stages else []
    if not files or contracts.SOURCE not in parquet_schema(files[0]).names:
        return {}
    return dict(Counter(value for path in files for value in read_parquet(path, columns=[contracts.SOURCE])[contracts.SOURCE].to_pylist() if value))


def _licences(rows: list[tuple[str, Licence]]) -> str:
    lines = [[what, licence.name, licence.link or "-", licence.note or "-"] for what, licence in rows]
    return (
        "## Licence\n\n"
        "The pairs are bound by the terms of every model that wrote or judged them and of every seed source they were made from; "
        "the header's `license` lists them all.\n\n" + _table(["component", "licence", "link", "note"], lines)
    )


def _funnel(stages: list[tuple[str, str]], manifests: dict[str, dict], summary: dict[str, Any]) -> str:
    rows = []
    for name, kind in stages:
        manifest = manifests[name]
        if not manifest:
            rows.append([name, kind, "-", "not run", "-", "-"])
            continue
        rejected = ", ".join(f"{reason} {count}" for reason, count in sorted((manifest.get("rejected") or {}).items())) or "-"
        rows.append([name, kind, manifest.get("rows_in"), manifest.get("rows_out"), manifest.get("rows_rejected"), rejected])
    generated = generation_cost(Path(summary["run_dir"]))["generated_tokens"]
    return (
        "## Funnel\n\nRows in, kept and rejected (by reason) per stage, from the stage manifests. Probes enter at `probes` and "
        "leave at `probe_exit` (reason `probe`); a sampled answer becomes one row per sample until `gather_samples`.\n\n"
        + _table(["stage", "kind", "in", "kept", "rejected", "rejected by reason"], rows)
        + f"\n\nThe models generated {generated} tokens over the whole run, {generated / summary['rows']:.0f} per exported pair."
    )


def _models(manifests: dict[str, dict], job: JobConfig | None) -> dict[str, dict[str, Any]]:
    """Every model a stage called: the job's name -> engine, model (weights or served name), dtype,
    stages; the spec as the stage's fingerprint recorded it, else as the recorded job has it."""
    recorded = {name: spec.model_dump(mode="json") for name, spec in job.models.items()} if job is not None else {}
    models: dict[str, dict[str, Any]] = {}
    for stage, manifest in manifests.items():
        specs = (manifest.get("fingerprint_parts") or {}).get("models") or {}
        for name, usage in (manifest.get("llm") or {}).items():
            spec = specs.get(name) or recorded.get(name) or {}
            entry = models.setdefault(name, {"engine": spec.get("engine", "?"), "model": spec.get("model"), "dtype": usage.get("dtype"), "stages": []})
            entry["stages"].append(stage)
    return models


def _models_and_prompts(stages: list[tuple[str, str]], manifests: dict[str, dict], models: dict[str, dict[str, Any]]) -> str:
    model_rows = [[f"`{name}`", spec["engine"], spec["model"] or "-", spec["dtype"] or "-", ", ".join(spec["stages"])] for name, spec in models.items()]
    prompt_rows = []
    for name, _ in stages:
        for template_id, digest in sorted(((manifests[name].get("fingerprint_parts") or {}).get("prompts") or {}).items()):
            prompt_rows.append([name, f"`{template_id}`", _prompt_version(template_id, digest), f"`{digest[:12]}`"])
    return (
        "## Models and prompts\n\n"
        + (_table(["model (job name)", "engine", "weights", "dtype", "stages"], model_rows) if model_rows else "No stage called a model.")
        + "\n\nPrompt templates each stage ran, by id, with the sha256 of the template file the run hashed "
        "(`prompts/<id>.j2` in synthmix):\n\n" + (_table(["stage", "template", "version", "sha256"], prompt_rows) if prompt_rows else "none recorded")
    )


def _prompt_version(template_id: str, digest: str) -> str:
    """The template's version when this checkout's file is the one the run hashed; else say it changed."""
    try:
        template = load_prompt(template_id)
    except PromptError:
        return "not in this synthmix"
    return str(template.version) if template.sha256 == digest else f"changed since (now {template.version})"


def _filters(run_dir: Path, stages: list[tuple[str, str]], manifests: dict[str, dict]) -> str:
    evaluation = evaluate_run(run_dir)
    verdicts = {entry["stage"]: entry for entry in evaluation.get("filters") or []}
    rows = []
    for name, kind in stages:
        rejected = (manifests[name].get("rejected") or {}) if manifests[name] else {}
        rejected = {reason: count for reason, count in rejected.items() if reason != "probe"}
        if not rejected:
            continue
        entry = verdicts.get(name)
        measured = NOT_MEASURED if entry is None else f"{entry['verdict']} ({entry['rejected']} of {entry['in']} probes rejected)"
        rows.append([name, kind, ", ".join(f"{reason} {count}" for reason, count in sorted(rejected.items())) or "-", measured])
    table = _table(["filter", "kind", "rejected (by reason)", "probe verdict"], rows) if rows else "No stage rejected a row."
    measured = render_eval(evaluation)
    return (
        "## Filters and how well they work\n\n"
        "Each stage that rejected rows, and what the probes (problems with known answers sent through the recipe) say of it: "
        "`helps` when kept answers are right more often than rejected ones (95% interval above zero), `unclear` or `hurts` "
        f"otherwise, `n/a` where it rejected no probe, `{NOT_MEASURED}` where no probe reached it.\n\n"
        + table
        + "\n\nThe evaluation (`synthmix eval RUN`):\n\n```text\n"
        + measured
        + "\n```"
    )


def _dedup_and_decontamination(stages: list[tuple[str, str]], manifests: dict[str, dict]) -> str:
    rows = []
    for name, kind in stages:
        manifest = manifests[name]
        if kind not in (DEDUP_KIND, DECONTAMINATE_KIND):
            continue
        if not manifest:
            rows.append([name, kind, "not run", "-"])
            continue
        params = (manifest.get("fingerprint_parts") or {}).get("params") or {}
        rejected = ", ".join(f"{reason} {count}" for reason, count in sorted((manifest.get("rejected") or {}).items())) or "none"
        if kind == DEDUP_KIND:
            extra = manifest.get("extra") or {}
            how = (
                f"MinHash over {', '.join(params.get('text_columns') or [])}, Jaccard >= {params.get('threshold')}, "
                f"{extra.get('num_perm', params.get('num_perm'))} permutations; {extra.get('documents', manifest.get('rows_in'))} rows, "
                f"{extra.get('candidate_pairs', '-')} candidate pairs, {extra.get('similar_pairs', '-')} similar"
            )
        else:
            how = f"n-gram overlap (n={params.get('n')}) with {', '.join(params.get('benchmarks') or []) or 'no benchmark'}"
        rows.append([name, how, f"{manifest.get('rows_in')} in, {manifest.get('rows_out')} kept", rejected])
    if not rows:
        return "## Deduplication and decontamination\n\nThe run has no dedup or decontaminate stage: neither was done."
    return "## Deduplication and decontamination\n\n" + _table(["stage", "how", "rows", "rejected"], rows)


def _mix(manifests: dict[str, dict], stages: list[tuple[str, str]]) -> str:
    phases = next(((manifests[name].get("extra") or {}).get("phases") for name, kind in stages if kind == "mix" and manifests[name]), None)
    if not phases:
        return ""
    sources = sorted({source for weights in phases.values() for source in weights})
    rows = [[phase, *(f"{weights.get(source, 0):.3f}" for source in sources)] for phase, weights in sorted(phases.items())]
    return (
        "## Pretraining mix\n\nThe run's mix draws its sources in these shares of tokens per training phase; every phase draws from "
        "the same pairs, so the phases are weights over the `source` column, not separate configs.\n\n" + _table(["phase", *sources], rows)
    )


def _how_it_was_made(run_dir: Path) -> str:
    job = (Path(run_dir) / "job.yaml").read_text(encoding="utf-8")
    return (
        "## How it was made\n\nThe job, as the run recorded it (`job.yaml`); `synthmix run` on it remakes the run, and "
        "`synthmix export RUN --format hf OUT` this folder.\n\n<details><summary>job.yaml</summary>\n\n```yaml\n" + job.rstrip() + "\n```\n\n</details>"
    )


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        return str(value if value is not None else "-").replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)
