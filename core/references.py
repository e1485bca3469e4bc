"""References between a generation's rows, as they are stored in text columns and files.

A generation points at rows of two tables from one place: the prompts it labels (an incoming
message, or the message of a feedback example: ``incoming:<id>``, ``feedback:<id>``) and the
examples it trains on or finds duplicates of (a stored example, or a synthetic reply staged by
the generation: ``example:<id>``, ``candidate:<id>``). These two small records are the only
code that writes or reads those strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from typing import get_args

PromptKind = Literal["incoming", "feedback"]
ExampleKind = Literal["example", "candidate"]


def _split(text: str, kinds: tuple[str, ...], what: str) -> tuple[str, int]:
    kind, sep, number = text.partition(":")
    if not sep or kind not in kinds or not number.isdigit():
        raise ValueError(
            f"not {what} reference: {text!r} (expected one of "
            + ", ".join(f"'{k}:<id>'" for k in kinds)
            + ")"
        )
    return kind, int(number)


@dataclass(frozen=True, order=True)
class PromptRef:
    """A prompt a generation labels: an incoming message (``incoming``, its id in
    ``incoming_messages``) or the message of a feedback example (``feedback``, its id in
    ``examples``)."""

    kind: PromptKind
    id: int

    @classmethod
    def parse(cls, text: str) -> PromptRef:
        """``"incoming:12"`` -> ``PromptRef("incoming", 12)``; raises ValueError on anything
        else."""
        kind, number = _split(text, get_args(PromptKind), "a prompt")
        return cls(kind, number)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True, order=True)
class ExampleRef:
    """A training example or a duplicate's original: a stored example (``example``, its id
    in ``examples``) or a synthetic reply staged by a generation (``candidate``, its id in
    ``synthetic_candidates``)."""

    kind: ExampleKind
    id: int

    @classmethod
    def parse(cls, text: str) -> ExampleRef:
        """``"example:7"`` -> ``ExampleRef("example", 7)``; raises ValueError on anything
        else."""
        kind, number = _split(text, get_args(ExampleKind), "an example")
        return cls(kind, number)  # type: ignore[arg-type]

    @classmethod
    def example(cls, example_id: int) -> ExampleRef:
        return cls("example", example_id)

    @classmethod
    def candidate(cls, candidate_id: int) -> ExampleRef:
        return cls("candidate", candidate_id)

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"
