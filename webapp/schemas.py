"""Request and response schemas; they also generate the OpenAPI document."""

from __future__ import annotations

import numbers
from typing import Any

from apiflask import Schema
from apiflask.fields import Boolean
from apiflask.fields import Dict
from apiflask.fields import Float
from apiflask.fields import Integer
from apiflask.fields import List
from apiflask.fields import Nested
from apiflask.fields import String
from apiflask.validators import Length
from apiflask.validators import OneOf
from apiflask.validators import Range
from flask import current_app
from marshmallow import ValidationError
from marshmallow import validates

from core.provenance import Provenance


class StrictInteger(Integer):
    """An integer that refuses strings, floats and booleans."""

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise self.make_error("invalid")
        return int(value)


def _settings() -> Any:
    return current_app.extensions["replyguard"].settings


def check_text(value: str, name: str, limit: int) -> None:
    if not value.strip():
        raise ValidationError(f"{name} is empty or only whitespace")
    if len(value) > limit:
        raise ValidationError(f"{name} is longer than {limit} characters")


class SuggestIn(Schema):
    message = String(required=True, metadata={"description": "The message to reply to."})
    niche = String(load_default=None, validate=Length(min=1, max=100))
    k = StrictInteger(load_default=None, metadata={"description": "How many suggestions (1-10)."})
    force = Boolean(
        load_default=False,
        metadata={"description": "Return suggestions even when the model abstains."},
    )

    @validates("message")
    def _message(self, value: str, **_: Any) -> None:
        check_text(value, "message", _settings().max_message_chars)

    @validates("k")
    def _k(self, value: int | None, **_: Any) -> None:
        limit = _settings().max_k
        if value is not None and not 1 <= value <= limit:
            raise ValidationError(f"k must be between 1 and {limit}")


class SuggestionOut(Schema):
    reply_id = Integer()
    text = String()
    score = Float(
        metadata={
            "description": "In [0, 1]: the weighted mean of the model's signals (1 = each at "
            "its maximum); comparable across messages of one model version."
        }
    )


class SuggestOut(Schema):
    model_version = String()
    triggered = Boolean(
        metadata={
            "description": "False when the model abstains: its best score is below the "
            "threshold chosen at training."
        }
    )
    threshold = Float(metadata={"description": "The model's triggering threshold, in [0, 1]."})
    reason = String(allow_none=True, metadata={"description": "Why the model abstained."})
    suggestions = List(Nested(SuggestionOut))


class FeedbackIn(Schema):
    message = String(required=True)
    suggestions = List(String(), required=True, validate=Length(max=10))
    chosen = StrictInteger(
        load_default=None, metadata={"description": "Index of the suggestion the user tapped."}
    )
    typed = String(load_default=None, metadata={"description": "What the user wrote instead."})
    niche = String(load_default=None, validate=Length(min=1, max=100))
    model_version = String(load_default=None, validate=Length(max=64))

    @validates("message")
    def _message(self, value: str, **_: Any) -> None:
        check_text(value, "message", _settings().max_message_chars)

    @validates("typed")
    def _typed(self, value: str | None, **_: Any) -> None:
        if value is not None:
            check_text(value, "typed", _settings().max_message_chars)


class FeedbackOut(Schema):
    example_id = Integer()
    provenance = String()
    duplicate = Boolean()


class ExampleRowIn(Schema):
    message = String(required=True)
    reply = String(required=True)
    niche = String(load_default=None)
    provenance = String(load_default=None)


class ExamplesIn(Schema):
    examples = List(Nested(ExampleRowIn), required=True)
    provenance = String(
        load_default=None,
        validate=OneOf([v.value for v in Provenance]),
        metadata={"description": "Provenance for rows without their own: human or synthetic."},
    )
    skip_invalid = Boolean(load_default=False)


class ImportOut(Schema):
    added = Integer()
    duplicates = Integer()
    skipped = List(Dict())


class ModelOut(Schema):
    version = String()
    generation = Integer()
    parent = String(allow_none=True)
    status = String()
    created_at = String()
    promoted_at = String(allow_none=True)


class ModelsOut(Schema):
    production = String(allow_none=True)
    serving = String(allow_none=True)
    models = List(Nested(ModelOut))


class ReasonIn(Schema):
    reason = String(required=True, metadata={"description": "Why; recorded in the audit log."})

    @validates("reason")
    def _reason(self, value: str, **_: Any) -> None:
        check_text(value, "reason", 2_000)


class AuditQuery(Schema):
    limit = Integer(load_default=100, validate=Range(min=1, max=1_000))


class CuratedIn(Schema):
    text = String(required=True, validate=Length(min=1, max=200))
    niche = String(load_default="general", validate=Length(min=1, max=100))
    reason = String(required=True, metadata={"description": "Why; recorded in the audit log."})

    @validates("reason")
    def _reason(self, value: str, **_: Any) -> None:
        check_text(value, "reason", 2_000)


class BlockIn(Schema):
    kind = String(
        load_default="text",
        validate=OneOf(["text", "pattern"]),
        metadata={
            "description": "text: this reply (case and punctuation aside); pattern: a "
            "case-insensitive regular expression searched in every reply."
        },
    )
    value = String(required=True, validate=Length(min=1, max=200))
    reason = String(required=True, metadata={"description": "Why; recorded in the audit log."})

    @validates("reason")
    def _reason(self, value: str, **_: Any) -> None:
        check_text(value, "reason", 2_000)


class CurationItemOut(Schema):
    id = Integer()
    text = String()
    kind = String()
    value = String()
    niche = String()
    reason = String()
    created_by = String()
    created_at = String()


class BankOut(Schema):
    curated = List(Nested(CurationItemOut))
    blocks = List(Nested(CurationItemOut))
