"""Where an example came from. Set once at ingestion; never changed afterwards."""

from __future__ import annotations

import enum


class Provenance(enum.StrEnum):
    # Written by a person.
    HUMAN = "human"
    # A model suggestion a person chose: model-influenced, a feedback loop, not real data.
    HUMAN_SELECTED = "human_selected"
    # Written by a model; the row records the generation and model version that wrote it.
    SYNTHETIC = "synthetic"

    @classmethod
    def parse(cls, value: str) -> Provenance:
        try:
            return cls(value.strip().lower())
        except ValueError:
            allowed = ", ".join(p.value for p in cls)
            # Echo a bounded prefix: an error answer is not to carry a huge input back.
            shown = repr(value[:40]) + ("..." if len(value) > 40 else "")
            raise ValueError(f"provenance must be one of {allowed}, not {shown}") from None

    @property
    def is_real(self) -> bool:
        """Only human-written rows may enter the protected reservoir."""
        return self is Provenance.HUMAN


class ProvenanceImmutableError(RuntimeError):
    """Raised when anything tries to change the provenance of a stored example."""
