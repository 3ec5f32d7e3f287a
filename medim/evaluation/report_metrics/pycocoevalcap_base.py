"""What the two pycocoevalcap protocols (`r2gen`, `coco`) share: their metric families, the `metrics`
parameter, the conformance example and the packages they need."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from medim.evaluation.report_metrics.base import ProtocolParams, ReportMetric
from medim.evaluation.report_metrics.coco_caption import FAMILIES
from medim.evaluation.report_metrics.requirements import missing_packages


class CaptionMetricParams(ProtocolParams):
    """The pycocoevalcap families a protocol computes."""

    metrics: tuple[Literal["bleu", "meteor", "rouge", "cider"], ...] = Field(
        ("bleu", "meteor", "rouge", "cider"), description="metric families to compute"
    )


class PycocoevalcapProtocol(ReportMetric):
    """Base of the protocols scored by pycocoevalcap's Bleu, Meteor 1.5, Rouge and Cider (coco_caption.py)."""

    FAMILIES = FAMILIES

    @classmethod
    def example_params(cls, workdir: Path) -> dict[str, Any]:
        """The conformance checks leave METEOR out: its Java process takes seconds to start
        (tests/evaluation/report_metrics checks METEOR against pycocoevalcap)."""
        return {"metrics": ["bleu", "rouge", "cider"]}

    def missing_packages(self) -> list[str]:
        """pycocoevalcap, when it is not installed (with the command that installs it)."""
        problem = missing_packages("pycocoevalcap")
        return [] if problem is None else [problem]
