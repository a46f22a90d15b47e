"""Every stage kind a job may name. Only the CLI imports this; the runner takes what it is handed."""

from pipeline.stage import Stage
from stages.answer import Answer
from stages.consistency import Consistency
from stages.critique import Critique
from stages.decontaminate import Decontaminate
from stages.dedup import Dedup
from stages.difficulty import Difficulty
from stages.evolve import Evolve
from stages.gather_samples import GatherSamples
from stages.judged_responses import JudgedResponses, JudgedSource
from stages.mix import Mix
from stages.probes import ProbeExit, Probes, ProbeSource
from stages.quality import Quality
from stages.seeds import Seeds
from stages.synthesize import Synthesize
from stages.tokenize import Tokenize
from stages.verify_code import VerifyCode

STAGES: dict[str, type[Stage]] = {
    stage.name: stage
    for stage in (
        Seeds,
        Synthesize,
        Evolve,
        Answer,
        GatherSamples,
        Tokenize,
        Mix,
        Consistency,
        Critique,
        Quality,
        Decontaminate,
        Dedup,
        VerifyCode,
        Probes,
        ProbeSource,
        ProbeExit,
        JudgedResponses,
        JudgedSource,
        Difficulty,
    )
}
