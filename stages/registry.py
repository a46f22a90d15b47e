"""Every stage kind a job may name. Only the CLI imports this; the runner takes what it is handed."""

from synthmix.pipeline.stage import Stage
from synthmix.stages.answer import Answer
from synthmix.stages.consistency import Consistency
from synthmix.stages.critique import Critique
from synthmix.stages.decontaminate import Decontaminate
from synthmix.stages.dedup import Dedup
from synthmix.stages.difficulty import Difficulty
from synthmix.stages.evolve import Evolve
from synthmix.stages.gather_samples import GatherSamples
from synthmix.stages.judged_responses import JudgedResponses, JudgedSource
from synthmix.stages.mix import Mix
from synthmix.stages.probes import ProbeExit, Probes, ProbeSource
from synthmix.stages.quality import Quality
from synthmix.stages.seeds import Seeds
from synthmix.stages.synthesize import Synthesize
from synthmix.stages.tokenize import Tokenize
from synthmix.stages.verify_code import VerifyCode

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
