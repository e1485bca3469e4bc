"""The sensitive rule on its labelled list: false negatives and false positives.

Usage (from the repository root):
    .venv/bin/python -m bench.sensitive_check
    git show 8507ead:core/content.py > /tmp/content_before.py
    .venv/bin/python -m bench.sensitive_check --module /tmp/content_before.py

Reads ``tests/data/sensitive_check.tsv`` (``refuse``: an offensive text, disguised; ``pass``:
an ordinary one) and runs ``is_sensitive`` of ``core.content``, or of the file ``--module``
names (an older core/content.py: "before"), over every text. Prints the counts and each
miss: a false negative is an offensive text that passes, a false positive an ordinary one
refused. With ``--corpus``, also how many of the chitchat demo corpus's distinct short
replies (at most 40 characters and 8 words: what the response set may serve) the rule
refuses, and its time per reply. The figures are in docs/safeguards.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import time
from collections.abc import Callable
from pathlib import Path

LIST = Path(__file__).resolve().parent.parent / "tests" / "data" / "sensitive_check.tsv"
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def labelled(path: Path = LIST) -> list[tuple[str, str, str]]:
    """The list's rows: (label, text, what it tries); ``\\uXXXX`` in a text is decoded.

    Raises:
        ValueError: a row without three columns or with another label.
    """
    rows: list[tuple[str, str, str]] = []
    lines = [line for line in path.read_text("utf-8").splitlines() if not line.startswith("#")]
    for number, line in enumerate(lines[1:], start=2):
        parts = line.split("\t")
        if len(parts) != 3 or parts[0] not in ("refuse", "pass"):
            raise ValueError(f"{path.name}: row {number} is not 'refuse|pass<TAB>text<TAB>what'")
        label, text, what = parts
        rows.append((label, _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text), what))
    return rows


def misses(
    rule: Callable[[str], bool], rows: list[tuple[str, str, str]]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(false negatives, false positives) of ``rule`` on ``rows``, each as (text, what)."""
    negatives = [(t, w) for label, t, w in rows if label == "refuse" and not rule(t)]
    positives = [(t, w) for label, t, w in rows if label == "pass" and rule(t)]
    return negatives, positives


def corpus_refusals(rule: Callable[[str], bool]) -> tuple[int, list[str], float]:
    """(distinct short replies, those ``rule`` refuses, seconds per reply) on the chitchat
    demo corpus."""
    from core.demo import chitchat_conversations

    replies = sorted(
        {
            pair.reply
            for conversation in chitchat_conversations()
            for pair in conversation.pairs
            if len(pair.reply) <= 40 and len(pair.reply.split()) <= 8
        }
    )
    start = time.perf_counter()
    refused = [reply for reply in replies if rule(reply)]
    return len(replies), refused, (time.perf_counter() - start) / max(len(replies), 1)


def _rule(module: str | None) -> Callable[[str], bool]:
    if module is None:
        from core.content import is_sensitive

        return is_sensitive
    spec = importlib.util.spec_from_file_location("content_under_test", module)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {module}")
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    rule: Callable[[str], bool] = loaded.is_sensitive
    return rule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", help="an older core/content.py to measure instead")
    parser.add_argument("--corpus", action="store_true", help="also the chitchat corpus")
    args = parser.parse_args()
    rows = labelled()
    rule = _rule(args.module)
    negatives, positives = misses(rule, rows)
    offensive = sum(1 for label, _, _ in rows if label == "refuse")
    ordinary = len(rows) - offensive
    print(f"{len(rows)} texts: {offensive} offensive, {ordinary} ordinary")
    print(f"false negatives: {len(negatives)} of {offensive}")
    for text, what in negatives:
        print(f"  passed  {text!r}  ({what})")
    print(f"false positives: {len(positives)} of {ordinary}")
    for text, what in positives:
        print(f"  refused {text!r}  ({what})")
    if args.corpus:
        _corpus(rule)


def _corpus(rule: Callable[[str], bool]) -> None:
    total, refused, seconds = corpus_refusals(rule)
    print(f"chitchat: {len(refused)} of {total} short replies refused, {seconds * 1e6:.0f} us each")
    for reply in refused:
        print(f"  refused {reply!r}")


if __name__ == "__main__":
    main()
