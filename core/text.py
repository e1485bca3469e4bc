"""Text normalisation and content hashes shared by ingestion, the model and the safeguards."""

from __future__ import annotations

import hashlib
import unicodedata


def normalize(text: str) -> str:
    """Unicode NFKC, case-folded, whitespace collapsed: the form two texts are compared in."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def text_hash(text: str) -> str:
    """Hash of the exact text (for embedding caches: the encoder sees case and spacing)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def pair_hash(message: str, reply: str) -> str:
    """Identity of an example: its normalised message and reply.

    Provenance and niche are deliberately not part of it, so re-importing a known pair
    under another provenance is a duplicate and can never relabel the stored row.
    """
    joined = normalize(message) + "\x1f" + normalize(reply)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()
