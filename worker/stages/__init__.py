"""A generation's stages, one module each, every one behind the :class:`Stage` protocol.

The order they run in is declared once, in worker/pipeline.py (``PIPELINE``); what they hand
on to each other is in :mod:`worker.stages.records`.
"""

from __future__ import annotations

from worker.stages.base import Counts
from worker.stages.base import GenerationRun
from worker.stages.base import Progress
from worker.stages.base import Stage
from worker.stages.base import StageResult
from worker.stages.deduplicate import DeduplicateStage
from worker.stages.encode import EncodeStage
from worker.stages.evaluate import EvaluateStage
from worker.stages.filter import FilterStage
from worker.stages.gate import GateStage
from worker.stages.mix import MixStage
from worker.stages.promote import PromoteStage
from worker.stages.snapshot import SnapshotStage
from worker.stages.synthesize import SynthesizeStage
from worker.stages.train import TrainStage

__all__ = [
    "Counts",
    "DeduplicateStage",
    "EncodeStage",
    "EvaluateStage",
    "FilterStage",
    "GateStage",
    "GenerationRun",
    "MixStage",
    "Progress",
    "PromoteStage",
    "SnapshotStage",
    "Stage",
    "StageResult",
    "SynthesizeStage",
    "TrainStage",
]
