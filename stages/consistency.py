"""consistency: keep objective pairs whose sampled answers agree (Hunyuan-Large step 4, objective half).

For rows with `objective` true and more than one entry in `samples`, a canonical final answer
is extracted from each sample (numbers, fractions, \\boxed{}, option letters, yes/no, Chinese
numerals, full-width digits), they vote, and the pair is kept only when the winner's share
reaches `min_agreement` and is not tied; `answer` becomes the first majority sample. Other
rows pass unvoted. The vote is recorded in `votes` and summarised in `meta.consistency`.
Rejects: inconsistent (reject_detail = the votes); empty (a pair with no answer text).
"""

from __future__ import annotations

import dataclasses
import json

import pyarrow as pa
from pydantic import Field

from synthmix.pipeline import contracts
from synthmix.pipeline.contracts import RejectReason
from synthmix.pipeline.stage import Execution, Resources, Stage, StageParams, with_columns
from synthmix.quality.voting import vote_answers


class ConsistencyParams(StageParams):
    min_agreement: float = Field(default=0.6, gt=0, le=1, description="share of the samples the winning answer needs")


class Consistency(Stage):
    name = "consistency"
    input_columns = (contracts.ANSWER, contracts.SAMPLES, contracts.OBJECTIVE)
    output_fields = (
        pa.field(contracts.ANSWER, pa.string()),
        pa.field(contracts.VOTES, pa.string()),
        pa.field(contracts.META, pa.string()),
    )
    params = ConsistencyParams
    resources = Resources(num_cpus=0.25, batch_size=512)
    execution = Execution.FILE_TASKS

    def transform(self, batch: pa.Table) -> pa.Table:
        answers, votes, metas, reasons, details = [], [], [], [], []
        for row in batch.select([contracts.ANSWER, contracts.SAMPLES, contracts.OBJECTIVE, contracts.META]).to_pylist():
            # A sample with no text states no answer: it votes for nothing, and counts against agreement.
            samples = [sample if isinstance(sample, str) else "" for sample in row[contracts.SAMPLES] or []]
            answer, vote_json, meta, reason, detail = row[contracts.ANSWER], None, row[contracts.META], None, None
            if row[contracts.OBJECTIVE] and len(samples) > 1:
                vote = vote_answers(samples, min_agreement=self.params.min_agreement)
                vote_json = json.dumps(dataclasses.asdict(vote), ensure_ascii=False)
                if vote.consistent:
                    answer = samples[vote.kept_index]
                    meta = _with_consistency(meta, vote)
                else:
                    reason, detail = RejectReason.INCONSISTENT.value, vote_json
            if reason is None and not (answer or "").strip():
                reason, detail = RejectReason.EMPTY.value, "the pair has no answer"
            answers.append(answer)
            votes.append(vote_json)
            metas.append(meta)
            reasons.append(reason)
            details.append(detail)
        outputs = {
            contracts.ANSWER: answers,
            contracts.VOTES: votes,
            contracts.META: metas,
            contracts.REJECT_REASON: reasons,
            contracts.REJECT_DETAIL: details,
        }
        return with_columns(batch, {name: pa.array(values, pa.string()) for name, values in outputs.items()})


def _with_consistency(meta: str | None, vote) -> str:
    data = json.loads(meta) if meta else {}
    votes_for_winner = vote.counts[vote.winner]
    data["consistency"] = {"votes": f"{votes_for_winner}/{len(vote.answers)}", "agreement": round(vote.agreement, 4)}
    return json.dumps(data, ensure_ascii=False, sort_keys=True)
