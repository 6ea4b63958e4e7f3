"""Parameter counts: the backbone against what prompt learning adds."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


def count_parameters(module: nn.Module) -> int:
    """Number of parameter values (shared parameters counted once)."""
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())


@dataclass(frozen=True)
class ParameterReport:
    """Backbone parameters against the prompt parameters an injector adds.

    Attributes:
        backbone: parameters of the backbone (unchanged by attaching).
        extractors: parameters of the prompt extractors (one per scale) or learned prompt tables.
        modulators: parameters of the scale/shift linear maps (two per target).
        classifier: parameters of an attached task classifier (0 when none).
        targets: number of modulated modules.
        scales: number of scales (extractors).
    """

    backbone: int
    extractors: int
    modulators: int
    classifier: int
    targets: int
    scales: int

    @property
    def prompt(self) -> int:
        """All added parameters: extractors + modulators + classifier."""
        return self.extractors + self.modulators + self.classifier

    @property
    def ratio(self) -> float:
        """Added parameters as a fraction of the backbone's."""
        return self.prompt / self.backbone if self.backbone else float("inf")

    def __str__(self) -> str:
        rows = [
            ("backbone", self.backbone),
            (f"prompt extractors ({self.scales})", self.extractors),
            (f"modulators ({self.targets} targets)", self.modulators),
            ("task classifier", self.classifier),
            ("prompt total", self.prompt),
        ]
        width = max(len(r[0]) for r in rows)
        lines = [f"{name:<{width}}  {value:>12,}" for name, value in rows]
        lines.append(f"{'added / backbone':<{width}}  {self.ratio:>12.2%}")
        return "\n".join(lines)
