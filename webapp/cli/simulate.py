"""`replyguard simulate`: the collapse experiment."""

from __future__ import annotations

from pathlib import Path

import click

from core.actions import ActionRefused
from webapp.cli.base import Context
from webapp.cli.base import main
from webapp.cli.base import pass_ctx
from webapp.cli.data import report_file
from worker.settings import load_settings

# What a run that stopped says, around why ("{}").
STOPPED = (
    "the simulation stopped, nothing was written: {} (is --data large enough? the demo has "
    "about 5,000 pairs in 36 niches)"
)


@main.command()
@click.option(
    "--policy",
    type=click.Choice(["replace", "accumulate", "guarded", "bootstrap", "ablation", "all"]),
    required=True,
    help="replace: train only on the last model's output; accumulate: keep real data, add "
    "synthetic unfiltered; guarded: the production pipeline; bootstrap: fine-tune production "
    "on its own replies to the new traffic, response set held; ablation: guarded without "
    "synthetic rows (run with every policy). all: every policy, same seed.",
)
@click.option("--generations", type=click.IntRange(1, 50), default=8, show_default=True)
@click.option(
    "--slice",
    "slice_size",
    type=click.IntRange(1),
    default=None,
    help="Incoming messages that arrive and are labelled per generation, each generation a "
    "new slice. Default: the traffic shared evenly among the generations.",
)
@click.option(
    "--fresh-human",
    type=click.IntRange(0),
    default=None,
    help="Messages of each slice that also arrive with their user's reply, as human "
    "examples, for every policy. Default: a fifth of the slice for guarded and ablation, "
    "none for the others.",
)
@click.option(
    "--data",
    default="demo",
    show_default=True,
    help="demo, or a JSONL or CSV file of message, reply, niche (human examples), read as "
    "`replyguard data import` reads it.",
)
@click.option(
    "--skip-invalid", is_flag=True, help="With --data FILE: use the valid rows, report the rest."
)
@click.option("--seed", type=int, default=13, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@pass_ctx
def simulate(
    ctx: Context,
    policy: str,
    generations: int,
    slice_size: int | None,
    fresh_human: int | None,
    data: str,
    skip_invalid: bool,
    seed: int,
    out: Path,
) -> None:
    """The collapse experiment: the self-consuming loop, offline, in this process.

    The run is written to a hidden folder beside OUT and renamed to OUT when it has finished:
    OUT holds a complete run or nothing, and a failed run can be started again as it was."""
    import shutil
    import tempfile

    from models.encoder import Encoder
    from worker.simulation import ABLATION
    from worker.simulation import FRESH_BY_DEFAULT
    from worker.simulation import POLICIES
    from worker.simulation import Plan
    from worker.simulation import default_slice
    from worker.simulation import run_simulation
    from worker.simulation import simulation_rows
    from worker.simulation import traffic_order
    from worker.simulation import write_report

    if out.exists() and not out.is_dir():
        raise click.ClickException(f"{out} is a file: give a new folder for the run")
    if out.exists() and any(out.iterdir()):
        raise click.ClickException(f"{out} is not empty: give a new folder for the run")
    if data != "demo" and not Path(data).is_file():
        raise click.ClickException(
            f"--data {data}: no such file (give demo, or a JSONL or CSV file)"
        )
    base = load_settings({"seed": seed})
    # A refused file says what and where, as `data import` says it (webapp.cli.base).
    rows, read = simulation_rows(data, base, skip_invalid)
    if read is not None:
        report_file(read.notes, read.skipped)
    policies = list(POLICIES) if policy == "all" else [policy]
    if ABLATION not in policies:
        policies.append(ABLATION)
    traffic = len(traffic_order(rows, base)[1])
    slice_size = slice_size or default_slice(traffic, generations)
    fresh = {
        p: fresh_human
        if fresh_human is not None
        else (max(slice_size // 5, 1) if p in FRESH_BY_DEFAULT else 0)
        for p in policies
    }
    plan = Plan(generations, slice_size, fresh)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    # What the data cannot support (too few examples for a benchmark, too little traffic
    # for the slices, no human rows left to mix) stops the run with a message that says so,
    # as a refusal (NoTrainingData, ...) or a library's ValueError; nothing is kept.
    ctx.refusal_frame = STOPPED
    try:
        cache = base.with_overrides(data_dir=work / "cache").embedding_cache
        encoder = Encoder.from_config(base.encoder, cache)
        results = run_simulation(policies, plan, rows, base, encoder, work, click.echo)  # type: ignore[arg-type]
        command = (
            f"replyguard simulate --policy {policy} --generations {generations} "
            f"--slice {slice_size}"
            f"{f' --fresh-human {fresh_human}' if fresh_human is not None else ''} --data {data}"
            f"{' --skip-invalid' if skip_invalid else ''} --seed {seed} --out {out}"
        )
        written = write_report(results, work, command, plan)
        if out.exists():
            out.rmdir()  # empty: checked above
        work.rename(out)
    except ValueError as exc:
        if isinstance(exc, ActionRefused):
            raise  # an Invalid refusal: the command line's handler frames it
        raise click.ClickException(STOPPED.format(exc)) from None
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    for path in written:
        click.echo(f"wrote {out / path.relative_to(work)}")
