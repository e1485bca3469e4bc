"""Named figures and the evaluator protocol, in the spirit of sentence-transformers'
``SentenceEvaluator``: an evaluation is a set of named figures, each saying what kind of
figure it is and whether greater is better, plus which one is primary. Two evaluations then
compare mechanically, and the promotion gate is a plain comparison of two such records.

Example:
    >>> ev = Evaluation(
    ...     {"recall@3": Figure("recall@3", 0.42, "relevance")}, primary="recall@3"
    ... )
    >>> Evaluation.from_dict(ev.to_dict()) == ev
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Literal
from typing import Protocol
from typing import get_args
from typing import runtime_checkable

import numpy as np

FigureKind = Literal["relevance", "diversity", "tail"]
KINDS: tuple[FigureKind, ...] = get_args(FigureKind)
# Bumped whenever the dict layout changes, so stored evaluations are read correctly.
SCHEMA_VERSION = 1


class TextEncoder(Protocol):
    """What the safeguards need from an encoder: ``models.encoder.Encoder`` satisfies it."""

    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class SuggestionLike(Protocol):
    @property
    def text(self) -> str: ...


class Suggester(Protocol):
    """What evaluation needs from a model: ``models.suggester.SuggestionModel`` satisfies it."""

    def suggest_many(self, messages: Sequence[str], k: int = ...) -> Sequence[Sequence[Any]]: ...


@runtime_checkable
class Evaluator(Protocol):
    """Anything that measures a model and returns an :class:`Evaluation`."""

    @property
    def primary(self) -> str: ...

    def __call__(self, model: Suggester) -> Evaluation: ...


@dataclass(frozen=True)
class Figure:
    """One measured number.

    Args:
        name: a stable key, e.g. ``"recall@3"`` or ``"vendi"``.
        value: the measured value.
        kind: relevance, diversity or tail (niche coverage of the rarest niches).
        greater_is_better: the direction in which the figure improves.
        label: plain-language name for people reading a dashboard or a decision.
        support: how many benchmark examples (or suggestions) the figure was measured on;
            0 when unknown. The gate uses it to tell one example's swing from a real change.
    """

    name: str
    value: float
    kind: FigureKind
    greater_is_better: bool = True
    label: str = ""
    support: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"figure {self.name!r}: kind must be one of {KINDS}, not {self.kind}")
        if not math.isfinite(self.value):
            # JSON has no NaN or infinity; a figure that cannot be measured must say so upstream.
            raise ValueError(f"figure {self.name!r}: value must be finite, not {self.value!r}")

    @property
    def title(self) -> str:
        return self.label or self.name

    def loss_against(self, reference: Figure) -> float:
        """Relative loss of this figure against a reference: positive means worse.

        Args:
            reference: the same figure measured on another model.

        Returns:
            ``(reference - self) / |reference|`` when greater is better (the sign flipped
            otherwise); 0.0 when both are zero, and infinity when the reference is zero and
            this figure is worse.
        """
        return relative_loss(reference.value, self.value, self.greater_is_better)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "kind": self.kind,
            "greater_is_better": self.greater_is_better,
            "label": self.label,
            "support": self.support,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Figure:
        return cls(
            name=str(data["name"]),
            value=float(data["value"]),
            kind=data["kind"],
            greater_is_better=bool(data.get("greater_is_better", True)),
            label=str(data.get("label", "")),
            support=int(data.get("support", 0)),
        )


def relative_loss(reference: float, candidate: float, greater_is_better: bool = True) -> float:
    """How much worse ``candidate`` is than ``reference``, as a share of the reference.

    Args:
        reference: the value compared against.
        candidate: the new value.
        greater_is_better: the figure's direction.

    Returns:
        Positive when the candidate is worse (0.18 = 18% worse), negative when better.
    """
    worse_by = (reference - candidate) if greater_is_better else (candidate - reference)
    if reference == 0.0:
        if worse_by == 0.0:
            return 0.0
        return math.inf if worse_by > 0 else -math.inf
    return worse_by / abs(reference)


@dataclass(frozen=True)
class FigureChange:
    """One figure in two evaluations."""

    name: str
    kind: FigureKind
    reference: float
    candidate: float
    # Positive = the candidate is worse, as a share of the reference.
    relative_loss: float

    @property
    def worse(self) -> bool:
        return self.relative_loss > 0


@dataclass
class Evaluation:
    """Named figures of one model on one benchmark, plus what produced them.

    Args:
        figures: by name.
        primary: the name of the figure that summarises relevance (used by the gate).
        suggestions: optional per-benchmark-message suggestion texts, kept for display.
        details: free-form JSON-safe context (benchmark size, tail niches, sample sizes).
    """

    figures: dict[str, Figure]
    primary: str
    suggestions: list[list[str]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, figure in self.figures.items():
            if key != figure.name:
                raise ValueError(f"figure stored under {key!r} is named {figure.name!r}")
        if self.primary not in self.figures:
            raise ValueError(f"primary figure {self.primary!r} is not among the figures")

    @classmethod
    def of(
        cls,
        figures: Sequence[Figure],
        primary: str,
        suggestions: list[list[str]] | None = None,
        details: dict[str, Any] | None = None,
    ) -> Evaluation:
        """Build from a list of figures (names must be unique)."""
        by_name: dict[str, Figure] = {}
        for figure in figures:
            if figure.name in by_name:
                raise ValueError(f"figure {figure.name!r} appears twice")
            by_name[figure.name] = figure
        return cls(by_name, primary, suggestions or [], details or {})

    @property
    def primary_figure(self) -> Figure:
        return self.figures[self.primary]

    def value(self, name: str) -> float:
        return self.figures[name].value

    def values(self) -> dict[str, float]:
        """A plain name -> value mapping (what a dashboard or a log line wants)."""
        return {name: figure.value for name, figure in self.figures.items()}

    def of_kind(self, kind: FigureKind) -> list[Figure]:
        return [figure for figure in self.figures.values() if figure.kind == kind]

    def compare(self, reference: Evaluation) -> dict[str, FigureChange]:
        """Every figure measured in both evaluations, with this one's loss against the other.

        Args:
            reference: the evaluation to compare against (production, or the baseline).

        Returns:
            By figure name; figures missing from either side are left out.
        """
        changes: dict[str, FigureChange] = {}
        for name, figure in self.figures.items():
            other = reference.figures.get(name)
            if other is None:
                continue
            changes[name] = FigureChange(
                name, figure.kind, other.value, figure.value, figure.loss_against(other)
            )
        return changes

    def to_dict(self, include_suggestions: bool = True) -> dict[str, Any]:
        """A JSON-safe dict; :meth:`from_dict` reads it back unchanged."""
        data: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "primary": self.primary,
            "figures": [figure.to_dict() for figure in self.figures.values()],
            "details": self.details,
        }
        if include_suggestions:
            data["suggestions"] = self.suggestions
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        schema = data.get("schema", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION:
            raise ValueError(f"evaluation schema {schema!r} is not supported ({SCHEMA_VERSION})")
        figures = [Figure.from_dict(item) for item in data["figures"]]
        suggestions = [list(map(str, row)) for row in data.get("suggestions", [])]
        return cls.of(figures, str(data["primary"]), suggestions, dict(data.get("details", {})))
