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
from apiflask.validators import NoneOf
from apiflask.validators import OneOf
from apiflask.validators import Range
from flask import current_app
from marshmallow import ValidationError
from marshmallow import validates

from core.ingest import IMPORTABLE
from core.ingest import SYNTHETIC_REFUSED
from core.provenance import Provenance
from core.schema import Role
from core.text import CONVERSATION
from core.text import CURATION
from core.text import KEY_NAME
from core.text import MESSAGE
from core.text import MODEL_VERSION
from core.text import NICHE
from core.text import REASON
from core.text import REPLY
from core.text import InvalidText
from core.text import TextRule
from core.text import clean_text


class StrictInteger(Integer):
    """An integer that refuses strings, floats and booleans."""

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise self.make_error("invalid")
        return int(value)


def _settings() -> Any:
    return current_app.extensions["replyguard"].settings


def _bounds(rule: TextRule) -> dict[str, int]:
    """The rule's length bounds, as OpenAPI states them."""
    return {"minLength": 1, "maxLength": rule.max_chars}


class Text(String):
    """A text field checked by the one text validation (core.text.clean_text) of its kind.

    Loads the text stripped of surrounding whitespace; refuses what the rule refuses with the
    rule's message. The rule's length bounds are in the OpenAPI document.

    Args:
        rule: the kind of text (core.text.MESSAGE, REPLY, NICHE, ...).
        label: the name used in error messages; defaults to the field's name.
    """

    def __init__(self, rule: TextRule, label: str = "", **kwargs: Any) -> None:
        metadata = {**_bounds(rule), **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)
        self.rule = rule
        self.label = label

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return clean_text(text, self.rule, self.label or self.name or "text")
        except InvalidText as exc:
            raise ValidationError(str(exc)) from None


class SuggestIn(Schema):
    message = Text(MESSAGE, required=True, metadata={"description": "The message to reply to."})
    niche = Text(NICHE, load_default=None)
    k = StrictInteger(load_default=None, metadata={"description": "How many suggestions (1-10)."})
    force = Boolean(
        load_default=False,
        metadata={"description": "Return suggestions even when the model abstains."},
    )

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
    message = Text(MESSAGE, required=True)
    # Every suggestion shown is a reply, held to the reply rule whether chosen or not.
    suggestions = List(Text(REPLY, label="suggestion"), required=True, validate=Length(max=10))
    chosen = StrictInteger(
        load_default=None, metadata={"description": "Index of the suggestion the user tapped."}
    )
    typed = Text(REPLY, load_default=None, metadata={"description": "What the user wrote instead."})
    niche = Text(NICHE, load_default=None)
    model_version = Text(
        MODEL_VERSION,
        load_default=None,
        metadata={"description": "The model version that made the suggestions (GET /v1/models)."},
    )


class FeedbackOut(Schema):
    example_id = Integer()
    provenance = String()
    duplicate = Boolean()


class ExampleRowIn(Schema):
    # Checked row by row by core.ingest.validate_row (the rule of each text), so that one bad
    # row is reported by its index and skip_invalid can import the others.
    message = String(required=True, metadata=_bounds(MESSAGE))
    reply = String(required=True, metadata=_bounds(REPLY))
    niche = String(load_default=None, metadata=_bounds(NICHE))
    provenance = String(load_default=None)
    conversation = String(
        load_default=None,
        metadata={
            **_bounds(CONVERSATION),
            "description": "The conversation the pair comes from: the response set counts "
            "distinct conversations (stored as import:<id>).",
        },
    )


class ExamplesIn(Schema):
    examples = List(Nested(ExampleRowIn), required=True)
    provenance = String(
        load_default=None,
        validate=[
            NoneOf([Provenance.SYNTHETIC.value], error=SYNTHETIC_REFUSED),
            OneOf([p.value for p in IMPORTABLE]),
        ],
        metadata={"description": "Provenance for rows without their own: human or human_selected."},
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
    reason = Text(
        REASON, required=True, metadata={"description": "Why; recorded in the audit log."}
    )


class AuditQuery(Schema):
    limit = Integer(load_default=100, validate=Range(min=1, max=1_000))


class CuratedIn(Schema):
    text = Text(CURATION, required=True)
    niche = Text(NICHE, load_default="general")
    reason = Text(
        REASON, required=True, metadata={"description": "Why; recorded in the audit log."}
    )


class BlockIn(Schema):
    kind = String(
        load_default="text",
        validate=OneOf(["text", "pattern"]),
        metadata={
            "description": "text: this reply (case and punctuation aside); pattern: a "
            "case-insensitive regular expression searched in every reply."
        },
    )
    value = Text(CURATION, required=True)
    reason = Text(
        REASON, required=True, metadata={"description": "Why; recorded in the audit log."}
    )


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


class KeyIn(Schema):
    name = Text(KEY_NAME, required=True, metadata={"description": "Who or what the key is for."})
    role = String(load_default=Role.CLIENT.value, validate=OneOf([r.value for r in Role]))


class KeyOut(Schema):
    id = Integer()
    prefix = String(metadata={"description": "The token's first characters, to tell keys apart."})
    name = String()
    role = String()
    created_at = String()
    revoked_at = String(allow_none=True)


class NewKeyOut(KeyOut):
    """A key just created: the only answer that carries its token."""

    token = String(metadata={"description": "Shown once, never stored."})


class RevokedKeyOut(KeyOut):
    """A key just revoked. Its own class because APIFlask registers a schema that is both
    nested (in KeysOut) and a response twice, and the second registration fails."""


class KeysOut(Schema):
    keys = List(Nested(KeyOut))
