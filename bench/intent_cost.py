"""What the intent signal costs a suggestion request: a model with its prompts against the same
model without them (as a model trained before intents loads), in one process, in turns.

Usage:
    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.intent_cost --data-dir DIR \\
        [--out docs/figures/intent_cost.json]

``DIR`` holds a trained production model (the demo's, as `make run` leaves it, or any
bench's data folder). The model without prompts is a copy of its artifact without
``prompts.json`` and ``prompt_embeddings.npy`` (models.artifact then serves it without the
intent signal, at weight 0). For batches of 1 and 32 distinct messages (what one client and
a full micro-batch of 32 clients hand the model), the time per message of encoding and
suggesting (``suggest_many``: encoder, candidates, tone, selection), best of three passes
over 256 messages, the two models in turns. The web server's own costs (HTTP, JSON,
recording) are the same for both and left out: bench/serving.py measures them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import distinct_messages
from core.db import Database
from models.artifact import load_model
from models.encoder import Encoder
from models.registry import artifact_dir
from models.registry import production
from models.suggester import SuggestionModel
from worker.settings import load_settings

PROMPT_FILES = ("prompts.json", "prompt_embeddings.npy")


def without_prompts(directory: Path, into: Path) -> Path:
    """A copy of the artifact in ``directory`` without its prompts (its manifest too)."""
    shutil.copytree(directory, into)
    manifest_path = into / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for name in PROMPT_FILES:
        (into / name).unlink()
        manifest["files"].pop(name, None)
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return into


def per_message_ms(model: SuggestionModel, messages: list[str], batch: int) -> float:
    """Milliseconds per message of ``suggest_many`` over ``messages``, ``batch`` at a time."""
    start = time.perf_counter()
    for i in range(0, len(messages), batch):
        model.suggest_many(messages[i : i + batch], k=3)
    return (time.perf_counter() - start) * 1000 / len(messages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("docs/figures/intent_cost.json"))
    args = parser.parse_args()
    settings = load_settings({"data_dir": str(args.data_dir)})
    db = Database(settings)
    with db.session() as session:
        row = production(session)
        if row is None:
            raise SystemExit(f"{args.data_dir} has no production model: run `make run` first")
        directory = artifact_dir(settings, row)
    db.dispose()
    encoder = Encoder()
    with tempfile.TemporaryDirectory() as tmp:
        models = {
            "with prompts": load_model(directory, encoder)[0],
            "without prompts": load_model(without_prompts(directory, Path(tmp) / "m"), encoder)[0],
        }
    messages = distinct_messages(256)
    figures: dict[str, dict[str, float]] = {}
    for batch in (1, 32):
        best = {name: float("inf") for name in models}
        for _ in range(3):
            for name, model in models.items():
                best[name] = min(best[name], per_message_ms(model, messages, batch))
        ratio = best["with prompts"] / best["without prompts"]
        figures[f"batch {batch}"] = {**{k: round(v, 3) for k, v in best.items()}, "ratio": ratio}
        print(
            f"batch {batch:>2}: {best['with prompts']:.2f} ms/message with prompts, "
            f"{best['without prompts']:.2f} without (ratio {ratio:.3f})"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
