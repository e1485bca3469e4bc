"""Request and response schemas; they also generate the OpenAPI document."""

from __future__ import annotations

import numbers
from typing import Any

from apiflask import Schema
from apiflask.fields import Boolean
from apiflask.fields import DateTime
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
from apiflask.validators import Regexp
from flask import current_app
from marshmallow import ValidationError
from marshmallow import validates_schema

from core.ingest import DEFAULT_NICHE
from core.ingest import IMPORTABLE
from core.ingest import SYNTHETIC_REFUSED
from core.provenance import Provenance
from core.schema import BlockKind
from core.schema import GenerationStatus
from core.schema import ModelStatus
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
from models.catalogue import MAX_REPLIES
from models.catalogue import MIN_REPLIES
from models.catalogue import Stance
from models.catalogue import Tone
from models.intent_edits import MAX_NAME_CHARS
from models.intent_edits import Source
from models.served import ReplySource
from webapp.errors import ApiError


class StrictInteger(Integer):
    """An integer that refuses strings, floats and booleans."""

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise self.make_error("invalid")
        return int(value)


class StrictBoolean(Boolean):
    """A JSON true or false; refuses what marshmallow's Boolean would also take (0, 1.0,
    "yes", "off", ...), which the OpenAPI document's boolean does not admit."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


def _settings() -> Any:
    return current_app.extensions["replyguard"].settings


class _SettingMaximum:
    """The upper bound of a Range or Length validator: the running app's setting ``setting``
    (worker.settings.Settings), read in the app context at each validation and when the OpenAPI
    document is generated (apispec reads ``max``). So the document states the bound that the
    deployment enforces (``REPLYGUARD_MAX_K=20`` makes both 20), from the one setting."""

    setting: str

    @property
    def max(self) -> Any:
        # An int; typed as Range's own ``max`` is (Length's is ``int | None``).
        return int(getattr(_settings(), self.setting))

    @max.setter
    def max(self, value: int | None) -> None:
        # Range's and Length's __init__ assign max=None; the bound is the setting's alone.
        if value is not None:
            raise TypeError(f"the maximum is the setting {self.setting!r}")


class SettingRange(_SettingMaximum, Range):
    """``Range(min, max)`` with ``max`` the setting named ``setting`` (an int).

    Args:
        min: the least value allowed.
        setting: the name of the Settings field that is the greatest value allowed.
        error: marshmallow's message, with ``{input}``, ``{min}`` and ``{max}``.
    """

    def __init__(self, min: int, setting: str, error: str | None = None) -> None:
        self.setting = setting
        super().__init__(min=min, error=error)


class SettingLength(_SettingMaximum, Length):
    """``Length(min, max)`` of a list or string, ``max`` the setting named ``setting``.

    Args:
        setting: the name of the Settings field that is the most items allowed.
        min: the fewest items allowed (None: no least).
        error: marshmallow's message, with ``{input}``, ``{min}`` and ``{max}``.
    """

    def __init__(self, setting: str, min: int | None = None, error: str | None = None) -> None:
        self.setting = setting
        super().__init__(min=min, error=error)


class BatchSize(SettingLength):
    """A batch of at least one and at most ``setting`` items; a larger batch is refused with
    413 like a body that is too large (split it), not 422: it is not wrong, only too big.

    Raises:
        ApiError: 413 over the setting.
        ValidationError: an empty batch.
    """

    def __call__(self, value: Any) -> Any:
        if len(value) > self.max:
            raise ApiError(413, f"at most {self.max} examples per request; split the batch")
        return super().__call__(value)


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
    k = StrictInteger(
        load_default=None,
        validate=SettingRange(1, "max_k", error="k must be between {min} and {max}"),
        metadata={"description": "How many suggestions (default: REPLYGUARD_DEFAULT_K)."},
    )
    force = StrictBoolean(
        load_default=False,
        metadata={"description": "Return suggestions even when the model abstains."},
    )


class SuggestionOut(Schema):
    reply_id = Integer(required=True)
    text = String(required=True)
    score = Float(
        required=True,
        metadata={
            "description": "In [0, 1]: the weighted mean of the model's signals (1 = each at "
            "its maximum); comparable across messages of one model version."
        },
    )


class SuggestOut(Schema):
    model_version = String(required=True)
    triggered = Boolean(
        required=True,
        metadata={
            "description": "False when the model abstains: its best score is below the "
            "threshold chosen at training."
        },
    )
    threshold = Float(
        required=True, metadata={"description": "The model's triggering threshold, in [0, 1]."}
    )
    reason = String(
        required=True, allow_none=True, metadata={"description": "Why the model abstained."}
    )
    suggestions = List(Nested(SuggestionOut), required=True)


class FeedbackIn(Schema):
    message = Text(MESSAGE, required=True)
    # Every suggestion shown is a reply, held to the reply rule whether chosen or not; no
    # more were shown than a request may ask for.
    suggestions = List(
        Text(REPLY, label="suggestion"), required=True, validate=SettingLength("max_k")
    )
    chosen = StrictInteger(
        load_default=None,
        validate=Range(min=0, error="'chosen' must index the suggestions shown (0-based)"),
        metadata={"description": "0-based index in 'suggestions' of the one the user tapped."},
    )
    typed = Text(REPLY, load_default=None, metadata={"description": "What the user wrote instead."})
    niche = Text(NICHE, load_default=None)
    model_version = Text(
        MODEL_VERSION,
        load_default=None,
        metadata={"description": "The model version that made the suggestions (GET /v1/models)."},
    )

    @validates_schema
    def _one_answer(self, data: dict[str, Any], **_: Any) -> None:
        # Rules across fields, raised under a field's name so that the 422's details.fields
        # names it like any other invalid field.
        chosen, typed = data.get("chosen"), data.get("typed")
        if (chosen is None) == (typed is None):
            message = "give exactly one of 'chosen' (an index) or 'typed' (a text)"
            raise ValidationError(message, field_name="chosen" if chosen is not None else "typed")
        shown = data.get("suggestions", [])
        if chosen is not None and chosen >= len(shown):
            raise ValidationError(
                f"'chosen' must index the {len(shown)} suggestion(s) shown (0-based)",
                field_name="chosen",
            )


class FeedbackOut(Schema):
    example_id = Integer(required=True)
    provenance = String(required=True, validate=OneOf([p.value for p in Provenance]))
    duplicate = Boolean(
        required=True, metadata={"description": "The example was stored before (answer 200)."}
    )


class ExampleRowIn(Schema):
    # Checked row by row by core.ingest.validate_row (the rule of each text), so that one bad
    # row is reported by its index and skip_invalid can import the others. The rule is the
    # one of import files, where an empty CSV cell is no value: so is "" here.
    message = String(required=True, metadata=_bounds(MESSAGE))
    reply = String(required=True, metadata=_bounds(REPLY))
    niche = String(
        load_default=None,
        metadata={
            "maxLength": NICHE.max_chars,
            "description": f"Empty or null: {DEFAULT_NICHE}.",
        },
    )
    provenance = String(
        load_default=None,
        metadata={
            "description": "human or human_selected (case and surrounding spaces aside); "
            "empty or null: the batch's provenance."
        },
    )
    conversation = String(
        load_default=None,
        metadata={
            "maxLength": CONVERSATION.max_chars,
            "description": "The conversation the pair comes from: the response set counts "
            "distinct conversations (stored as import:<id>). Empty or null: a conversation "
            "of its own.",
        },
    )


class ExamplesIn(Schema):
    examples = List(
        Nested(ExampleRowIn),
        required=True,
        validate=BatchSize("max_examples_per_request", min=1, error="give at least one example"),
    )
    provenance = String(
        load_default=None,
        validate=[
            NoneOf([Provenance.SYNTHETIC.value], error=SYNTHETIC_REFUSED),
            OneOf([p.value for p in IMPORTABLE]),
        ],
        metadata={"description": "Provenance for rows without their own: human or human_selected."},
    )
    skip_invalid = StrictBoolean(load_default=False)


class SkippedRowOut(Schema):
    index = Integer(required=True, metadata={"description": "0-based index in 'examples'."})
    error = String(required=True)


class ImportOut(Schema):
    added = Integer(required=True)
    duplicates = Integer(required=True)
    skipped = List(Nested(SkippedRowOut), required=True)


class ModelOut(Schema):
    version = String(required=True)
    generation = Integer(required=True)
    parent = String(required=True, allow_none=True)
    status = String(required=True, validate=OneOf([s.value for s in ModelStatus]))
    created_at = String(required=True, metadata={"format": "date-time"})
    promoted_at = String(required=True, allow_none=True, metadata={"format": "date-time"})


class ModelsOut(Schema):
    production = String(required=True, allow_none=True)
    serving = String(
        required=True,
        allow_none=True,
        metadata={"description": "The version this web process serves (None: none loaded)."},
    )
    models = List(Nested(ModelOut), required=True)


class ProductionChangeOut(Schema):
    version = String(required=True)
    status = String(required=True, validate=OneOf([s.value for s in ModelStatus]))


class GenerationStartedOut(Schema):
    generation_id = Integer(required=True)
    status_url = String(required=True, metadata={"description": "Poll it: GET gives progress."})


class GenerationOut(Schema):
    id = Integer(required=True)
    number = Integer(required=True)
    status = String(required=True, validate=OneOf([s.value for s in GenerationStatus]))
    stage = String(required=True, metadata={"description": "Empty before the first stage."})
    parent_version = String(required=True, allow_none=True)
    candidate_version = String(required=True, allow_none=True)
    verdict = String(required=True, allow_none=True)
    error = String(required=True)
    requested_by = String(required=True)
    created_at = String(required=True, metadata={"format": "date-time"})
    finished_at = String(required=True, allow_none=True, metadata={"format": "date-time"})


class GenerationDetailOut(GenerationOut):
    stages = Dict(required=True, metadata={"description": "Each stage's progress and timing."})
    metrics = Dict(
        required=True,
        metadata={"description": "The three evaluations (candidate, production, baseline)."},
    )
    decision = Dict(required=True, metadata={"description": "The gate's decision and why."})


class GenerationsOut(Schema):
    generations = List(Nested(GenerationOut), required=True)


class AuditEntryOut(Schema):
    id = Integer(required=True)
    at = String(required=True, metadata={"format": "date-time"})
    actor = String(required=True)
    action = String(required=True)
    target = String(required=True)
    reason = String(required=True)
    details = Dict(required=True)


class AuditOut(Schema):
    entries = List(Nested(AuditEntryOut), required=True)


class HealthOut(Schema):
    status = String(required=True, validate=OneOf(["ok"]))


class ReadyOut(Schema):
    status = String(required=True, validate=OneOf(["ready", "not ready"]))
    checks = Dict(
        required=True,
        metadata={
            "description": "database: ok or unreachable; model: the version served, or why none is."
        },
    )


class ReasonIn(Schema):
    reason = Text(
        REASON, required=True, metadata={"description": "Why; recorded in the audit log."}
    )


class AuditQuery(Schema):
    limit = Integer(load_default=100, validate=Range(min=1, max=1_000))


class CuratedIn(Schema):
    text = Text(CURATION, required=True)
    niche = Text(NICHE, load_default=DEFAULT_NICHE)
    reason = Text(
        REASON, required=True, metadata={"description": "Why; recorded in the audit log."}
    )


class BlockIn(Schema):
    kind = String(
        load_default="text",
        validate=OneOf([k.value for k in BlockKind]),
        metadata={
            "description": "text: this reply (case and punctuation aside); pattern: a "
            "case-insensitive regular expression searched in every reply."
        },
    )
    value = Text(CURATION, required=True)
    reason = Text(
        REASON, required=True, metadata={"description": "Why; recorded in the audit log."}
    )


class CuratedOut(Schema):
    """A curated reply: dumps a ``CuratedReply`` row."""

    id = Integer(required=True)
    text = String(required=True)
    niche = String(required=True)
    reason = String(required=True)
    created_by = String(required=True)
    created_at = DateTime(required=True, format="iso")


class BlockOut(Schema):
    """A block: dumps a ``ReplyBlock`` row."""

    id = Integer(required=True)
    kind = String(required=True, validate=OneOf([k.value for k in BlockKind]))
    value = String(required=True)
    reason = String(required=True)
    created_by = String(required=True)
    created_at = DateTime(required=True, format="iso")


class BankOut(Schema):
    """Dumps ``{"curated": [CuratedReply rows], "blocks": [ReplyBlock rows]}``."""

    curated = List(Nested(CuratedOut), required=True)
    blocks = List(Nested(BlockOut), required=True)


class ServedReplyOut(Schema):
    text = String(required=True)
    support = Integer(
        required=True,
        metadata={
            "description": "Distinct conversations that wrote this reply's meaning (the bank's "
            "count; 0 for a curated reply the model was not trained with)."
        },
    )
    source = String(
        required=True,
        validate=OneOf([s.value for s in ReplySource]),
        metadata={
            "description": "catalogue: a canonical reply of an intent; mined: found in the "
            "training data; curated: added by the product team."
        },
    )
    niches = List(String(), required=True)
    blocked = Boolean(
        required=True,
        metadata={"description": "Blocked since the model was built: never suggested."},
    )


class ServedIntentOut(Schema):
    intent = String(
        required=True,
        allow_none=True,
        metadata={"description": "The intent's name; null for the replies without one."},
    )
    group = String(required=True, allow_none=True)
    tone = String(required=True, allow_none=True)
    support = Integer(required=True, metadata={"description": "Its replies' support, summed."})
    disabled = Boolean(
        required=True,
        metadata={
            "description": "A reviewer disabled the intent: none of its replies is suggested."
        },
    )
    replies = List(Nested(ServedReplyOut), required=True)


class BankListOut(BankOut):
    """Dumps ``{"curated": [rows], "blocks": [rows], "model": str | None, "intents": [...]}``."""

    model = String(
        required=True,
        allow_none=True,
        metadata={"description": "The production model this web process serves, or null."},
    )
    intents = List(
        Nested(ServedIntentOut),
        required=True,
        metadata={
            "description": "The served response set by intent: the intents in the catalogue's "
            "order, then the replies without one; replies most supported first."
        },
    )


# A name or group of the catalogue of intents (models.intent_edits: the same rule and bound).
_SNAKE_CASE = r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$"
_SNAKE_CASE_ERROR = (
    "write it in snake_case (lower-case letters, digits and single underscores, starting with "
    "a letter), at most {max} characters"
)


def _intent_name(description: str, **kwargs: Any) -> String:
    return String(
        validate=[
            Length(min=1, max=MAX_NAME_CHARS, error=_SNAKE_CASE_ERROR),
            Regexp(_SNAKE_CASE, error=_SNAKE_CASE_ERROR.format(max=MAX_NAME_CHARS)),
        ],
        metadata={"description": description},
        **kwargs,
    )


def _reason() -> Text:
    return Text(REASON, required=True, metadata={"description": "Why; recorded in the audit log."})


class IntentIn(Schema):
    name = _intent_name("The new intent's name, not any intent's now.", required=True)
    group = _intent_name("The group it is listed under (new or existing).", required=True)
    tone = String(required=True, validate=OneOf([t.value for t in Tone]))
    stance = String(
        load_default=None,
        allow_none=True,
        validate=OneOf([s.value for s in Stance]),
        metadata={"description": "yes or no for an intent that answers a question; else null."},
    )
    replies = List(
        Text(CURATION),
        required=True,
        validate=Length(min=MIN_REPLIES, max=MAX_REPLIES),
        metadata={
            "description": "Its canonical replies, each passing the response set's rules 1-4 "
            "and the catalogue's (calm when sympathetic, in no other intent)."
        },
    )
    reason = _reason()


class IntentReplyIn(Schema):
    reply = Text(CURATION, required=True)
    reason = _reason()


class IntentRenameIn(Schema):
    new_name = _intent_name("The intent's new name, not any intent's now.", required=True)
    reason = _reason()


class IntentReplyOut(Schema):
    text = String(required=True)
    source = String(required=True, validate=OneOf([s.value for s in Source]))


class IntentOut(Schema):
    name = String(required=True)
    group = String(required=True)
    tone = String(required=True, validate=OneOf([t.value for t in Tone]))
    stance = String(required=True, allow_none=True, validate=OneOf([s.value for s in Stance]))
    source = String(
        required=True,
        validate=OneOf([s.value for s in Source]),
        metadata={"description": "catalogue: shipped in models/catalogue.yaml; reviewer: added."},
    )
    disabled = Boolean(required=True)
    shipped_name = String(
        required=True,
        allow_none=True,
        metadata={"description": "Its name in the shipped catalogue (null when added)."},
    )
    replies = List(Nested(IntentReplyOut), required=True)


class EditedIntentOut(IntentOut):
    """The intent an edit changed. Its own class because APIFlask registers a schema that is
    both nested (in IntentsOut) and a response twice, and the second registration fails."""


class IntentGroupOut(Schema):
    group = String(required=True)
    intents = List(Nested(IntentOut), required=True)


class SkippedEditOut(Schema):
    id = Integer(required=True)
    action = String(required=True)
    intent = String(required=True)
    why = String(required=True)


class IntentsOut(Schema):
    version = Integer(required=True, metadata={"description": "The catalogue's format version."})
    groups = List(Nested(IntentGroupOut), required=True)
    skipped = List(
        Nested(SkippedEditOut),
        required=True,
        metadata={
            "description": "Stored edits that no longer apply to the shipped catalogue (a "
            "release renamed or removed the intent, or took the name), and why."
        },
    )


class KeyIn(Schema):
    name = Text(KEY_NAME, required=True, metadata={"description": "Who or what the key is for."})
    role = String(load_default=Role.CLIENT.value, validate=OneOf([r.value for r in Role]))


class KeyOut(Schema):
    """A key as the API shows it (never its hash): dumps an ``ApiKey`` row."""

    id = Integer(required=True)
    prefix = String(
        required=True, metadata={"description": "The token's first characters, to tell keys apart."}
    )
    name = String(required=True)
    role = String(required=True, validate=OneOf([r.value for r in Role]))
    created_at = DateTime(required=True, format="iso")
    revoked_at = DateTime(required=True, allow_none=True, format="iso")


class NewKeyOut(KeyOut):
    """A key just created, the only answer that carries its token: dumps
    ``{"key": ApiKey row, "token": str}``."""

    token = String(required=True, metadata={"description": "Shown once, never stored."})

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        # The token is never stored, so it is not on the row: it comes beside it.
        if attr == "token":
            return obj["token"]
        return super().get_attribute(obj["key"], attr, default)


class RevokedKeyOut(KeyOut):
    """A key just revoked. Its own class because APIFlask registers a schema that is both
    nested (in KeysOut) and a response twice, and the second registration fails."""


class KeysOut(Schema):
    """Dumps ``{"keys": [ApiKey rows]}``."""

    keys = List(Nested(KeyOut), required=True)
