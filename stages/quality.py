"""quality: cheap text filters — heuristics, fastText language id, an optional fastText quality classifier.

What is read (`synthmix.pipeline.inputs.sample_text`): the column `text_column` when set; otherwise, for
instruction-answer rows, the pair — heuristics judge the answer (a refusal or a loop is the
answer's fault), language id reads instruction and answer apart, the classifier reads both
joined; otherwise `text`, so the stage also filters natural seed data.

Writes `lang` (lid.176 code of the text, or of the instruction for pairs), `lang_prob`,
`heuristic_scores` (JSON of every score, so thresholds retune without recomputing) and
`quality_score` (P(high) from the classifier; null without one).
Rejects, first failed rule wins:
- `too_short`, `too_large`, `refusal`, `boilerplate`, `repetitive` (`synthmix.quality.heuristics`);
- `lang`: confidently identified (`lang_prob` >= `min_lang_prob`) in a language outside
  `languages`, or instruction and answer confidently in different languages;
- `quality_low`: `quality_score` below `min_quality`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
from pydantic import Field

from synthmix.pipeline import contracts
from synthmix.pipeline.config import ConfigError
from synthmix.pipeline.contracts import RejectReason
from synthmix.pipeline.file_digest import sha256_file
from synthmix.pipeline.inputs.sample_text import check_text_source, choose_text_source, pair_texts
from synthmix.pipeline.stage import Execution, Resources, Stage, StageParams, with_columns
from synthmix.quality.heuristics import HeuristicThresholds, evaluate_heuristics, score_heuristics
from synthmix.quality.langid import find_language_mismatches, identify_languages, load_lid_model
from synthmix.quality.quality_classifier import load_quality_classifier, score_quality


class QualityParams(StageParams):
    text_column: str | None = Field(default=None, description="column to judge; default: the instruction-answer pair, else `text`")
    heuristics: HeuristicThresholds = HeuristicThresholds()
    # domain -> thresholds that replace `heuristics` for that domain's rows. A worked math answer
    # repeats its numbers and units step after step, which web-text repetition bounds read as a loop.
    domain_heuristics: dict[str, HeuristicThresholds] = Field(default_factory=dict)
    languages: list[str] | None = Field(default=None, description="lid.176 codes to keep, e.g. [en, zh]; none: every language")
    min_lang_prob: float = Field(default=0.5, ge=0, le=1, description="identifications below this never reject (short texts, code, numbers)")
    reject_language_mismatch: bool = Field(default=True, description="reject pairs whose instruction and answer are in different languages")
    classifier: str | None = Field(default=None, description="fastText model from `synthmix quality train`, relative to the job file")
    high_label: str = "high"
    min_quality: float = Field(default=0.5, ge=0, le=1, description="quality_score below this rejects as quality_low")


class Quality(Stage):
    name = "quality"
    output_fields = (
        pa.field(contracts.LANG, pa.string()),
        pa.field(contracts.LANG_PROB, pa.float32()),
        pa.field(contracts.HEURISTIC_SCORES, pa.string()),
        pa.field(contracts.QUALITY_SCORE, pa.float32()),
    )
    params = QualityParams
    resources = Resources(num_cpus=0.5, batch_size=512)
    execution = Execution.FILE_TASKS

    def classifier_path(self) -> Path | None:
        if self.params.classifier is None:
            return None
        path = Path(self.params.classifier)
        return path if path.is_absolute() else self.context.job_dir / path

    def fingerprint_extra(self) -> dict:
        """The classifier's bytes: a retrained model makes the stage stale."""
        path = self.classifier_path()
        if path is None:
            return {}
        if not path.is_file():
            raise ConfigError(
                f"quality.classifier {self.params.classifier!r}: no file at {path}; train one with "
                "`synthmix quality train ... -o MODEL.bin`, or remove the key to run without a classifier"
            )
        return {"classifier_sha256": sha256_file(path)}

    def setup_on_driver(self) -> None:
        check_text_source(self.context.input_schema, self.params.text_column, self.context.stage_name)

    def setup(self) -> None:
        self.lid_model = load_lid_model()
        path = self.classifier_path()
        self.classifier = load_quality_classifier(path) if path is not None else None

    def transform(self, batch: pa.Table) -> pa.Table:
        params = self.params
        source = choose_text_source(batch.column_names, params.text_column)
        if source is None:
            instructions, answers = batch[contracts.INSTRUCTION], batch[contracts.ANSWER]
            judged, classified = answers, pair_texts(instructions, answers)
            langs, probs = identify_languages(self.lid_model, instructions)
            answer_langs, answer_probs = identify_languages(self.lid_model, answers)
            mismatched = find_language_mismatches(langs, probs, answer_langs, answer_probs, min_prob=params.min_lang_prob)
        else:
            judged = classified = batch[source]
            langs, probs = identify_languages(self.lid_model, judged)
            answer_langs = answer_probs = None
            mismatched = np.zeros(batch.num_rows, dtype=bool)
        threshold_sets = [params.heuristics, *params.domain_heuristics.values()]
        scores = score_heuristics(
            judged,
            top_ngram_sizes=sorted({n for thresholds in threshold_sets for n in thresholds.max_top_ngram_frac}),
            dup_ngram_sizes=sorted({n for thresholds in threshold_sets for n in thresholds.max_dup_ngram_frac}),
        )
        outcomes = evaluate_heuristics(scores, params.heuristics)
        if params.domain_heuristics and contracts.DOMAIN in batch.column_names:
            domains = batch[contracts.DOMAIN].to_pylist()
            for domain, thresholds in params.domain_heuristics.items():
                if domain in domains:
                    own = evaluate_heuristics(scores, thresholds)
                    outcomes = [mine if row_domain == domain else outcome for row_domain, outcome, mine in zip(domains, outcomes, own, strict=True)]
        quality = score_quality(self.classifier, classified, high_label=params.high_label) if self.classifier is not None else None

        reasons: list[str | None] = []
        details: list[str | None] = []
        for index, (reason, detail) in enumerate(outcomes):
            if reason is None:
                reason, detail = self._language_fault(index, langs, probs, answer_langs, answer_probs, mismatched)
            if reason is None and quality is not None and quality[index] < params.min_quality:
                reason = RejectReason.QUALITY_LOW
                detail = json.dumps({"quality_score": round(float(quality[index]), 4), "min_quality": params.min_quality})
            reasons.append(RejectReason(reason).value if reason is not None else None)
            details.append(detail or None)

        outputs = {
            contracts.LANG: pa.array(langs.tolist(), pa.string()),
            contracts.LANG_PROB: pa.array(probs, pa.float32()),
            contracts.HEURISTIC_SCORES: pa.array(describe_scores(scores.to_table()), pa.string()),
            contracts.QUALITY_SCORE: pa.array(quality, pa.float32()) if quality is not None else pa.nulls(batch.num_rows, pa.float32()),
            contracts.REJECT_REASON: pa.array(reasons, pa.string()),
            contracts.REJECT_DETAIL: pa.array(details, pa.string()),
        }
        return with_columns(batch, outputs)

    def _language_fault(self, index, langs, probs, answer_langs, answer_probs, mismatched) -> tuple[str | None, str | None]:
        params = self.params
        if params.languages is not None and probs[index] >= params.min_lang_prob and langs[index] not in params.languages:
            detail = {"lang": str(langs[index]), "prob": round(float(probs[index]), 4), "allowed": params.languages}
            return RejectReason.LANG, json.dumps(detail)
        if params.reject_language_mismatch and mismatched[index]:
            detail = {
                "instruction_lang": str(langs[index]),
                "instruction_prob": round(float(probs[index]), 4),
                "answer_lang": str(answer_langs[index]),
                "answer_prob": round(float(answer_probs[index]), 4),
            }
            return RejectReason.LANG, json.dumps(detail)
        return None, None


def describe_scores(scores: pa.Table) -> list[str]:
    """One JSON object of heuristic scores per row, fractions rounded to 4 places."""
    return [json.dumps({name: round(value, 4) if isinstance(value, float) else value for name, value in row.items()}) for row in scores.to_pylist()]
