"""`replyguard models`: the registry's versions, the clean baseline, overrides and rollbacks."""

from __future__ import annotations

from typing import Any

import click

from webapp.cli.base import CLI_ACTOR
from webapp.cli.base import Context
from webapp.cli.base import main
from webapp.cli.base import pass_ctx
from webapp.cli.base import reason_option


@main.group()
def models() -> None:
    """Model versions."""


@models.command("list")
@pass_ctx
def models_list(ctx: Context) -> None:
    """Every model version with its status."""
    from models.registry import versions

    with ctx.db.session() as session:
        rows = versions(session)
    if not rows:
        click.echo("no models yet: run `replyguard models train-baseline`")
    for row in rows:
        created = f"{row.created_at:%Y-%m-%d %H:%M}"
        click.echo(f"{row.version:8} generation {row.generation:<3} {row.status:10} {created}")


@models.command("show")
@click.argument("version")
@pass_ctx
def models_show(ctx: Context, version: str) -> None:
    """One model version: its lineage, its training data and response set, and its
    evaluation on the benchmark (the metrics the gate compares)."""
    _show_model(ctx, version)


def _show_model(ctx: Context, version: str) -> None:
    from models.artifact import ArtifactError
    from models.artifact import read_manifest
    from models.registry import artifact_dir
    from models.registry import get_version
    from safeguards.metrics import Evaluation

    with ctx.db.session() as session:
        row = get_version(session, version)
        path, stored = artifact_dir(ctx.settings, row), dict(row.evaluation or {})
        promoted = f", promoted {row.promoted_at:%Y-%m-%d %H:%M}" if row.promoted_at else ""
        click.echo(
            f"{row.version}: generation {row.generation}, {row.status}, parent "
            f"{row.parent or '- (the clean baseline)'}, created "
            f"{row.created_at:%Y-%m-%d %H:%M} UTC{promoted}"
        )
    try:
        training = read_manifest(path).get("training", {})
    except ArtifactError as exc:
        click.echo(f"artifact: {exc}")
        training = {}
    if training:
        provenance = ", ".join(f"{k} {v}" for k, v in training["provenance_counts"].items())
        kept = training["response_set"]
        removed = ", ".join(f"{k} {v}" for k, v in kept["removed"].items())
        click.echo(
            f"trained on {training['examples']} examples ({provenance}); response set of "
            f"{kept['served']} replies of {kept['replies']} distinct (removed: {removed})"
        )
        if "catalogue" in kept:  # models trained before the response set had intents: none
            click.echo(
                f"by intent: {kept['catalogue']} catalogue replies of {kept['intents']} "
                f"intents, {kept['mined']} mined ({kept['joined']} joined an intent), "
                f"{len(kept['unnamed'])} unnamed clusters for a reviewer to name"
            )
    if "evaluation" not in stored:
        click.echo("not evaluated yet (a generation evaluates its candidate in its evaluate stage)")
        return
    evaluation = Evaluation.from_dict(stored["evaluation"])
    size = evaluation.details.get("benchmark_size", "?")
    click.echo(f"evaluation on the benchmark ({size} messages):")
    for metric in evaluation.metrics.values():
        primary = " (primary)" if metric.name == evaluation.primary else ""
        direction = "higher" if metric.greater_is_better else "lower"
        click.echo(
            f"  {metric.name:28} {metric.value:8.4f}  {metric.kind:10} {direction} is better"
            f"{primary}"
        )


@models.command("train-baseline")
@pass_ctx
def models_train_baseline(ctx: Context) -> None:
    """Train generation 0 (human data only: the clean baseline), promote it if nothing is
    in production yet, and print its evaluation."""
    train_clean_baseline(ctx, CLI_ACTOR)


def train_clean_baseline(ctx: Context, actor: str) -> None:
    """Train the clean baseline (worker.baseline.train_baseline) and print its weights,
    coverage and evaluation.

    Args:
        actor: who is credited with it in the audit log and the generation's row: "cli" for
            `models train-baseline`, `run`'s own name when `run` does it on a new data folder.

    Raises:
        NoTrainingData: the baseline exists already, or there is nothing to train on.
    """
    from worker.baseline import train_baseline

    version, trained = train_baseline(ctx.pipeline, actor)
    click.echo(
        f"signal weights {trained.weights}; answers "
        f"{trained.held_out_coverage:.0%} of held-out messages "
        f"(threshold {trained.triggering_threshold:.3f})"
    )
    _show_model(ctx, version.version)


@models.command("promote")
@click.argument("version")
@reason_option
@pass_ctx
def models_promote(ctx: Context, version: str, reason: str) -> None:
    """Make VERSION production, overriding the gate if it blocked it (audited)."""
    from worker.promotion import override

    _change_production(ctx, override, version, reason)
    click.echo(f"{version} is now production")


@models.command("rollback")
@click.argument("version")
@reason_option
@pass_ctx
def models_rollback(ctx: Context, version: str, reason: str) -> None:
    """Make an earlier VERSION production again (audited)."""
    from worker.promotion import rollback

    _change_production(ctx, rollback, version, reason)
    click.echo(f"rolled back: {version} is production again")


def _change_production(ctx: Context, action: Any, version: str, reason: str) -> None:
    """Run override or rollback (worker/promotion.py, where their rules are)."""
    with ctx.db.session() as session:
        action(session, ctx.settings, version, CLI_ACTOR, reason)
