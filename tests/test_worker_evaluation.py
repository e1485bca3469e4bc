"""Model versions evaluated once per way of measuring (worker/evaluation.py), including
evaluations stored before metric schema 2, on the demo data's clean baseline."""

from __future__ import annotations

import re
from typing import Any

import pytest

from core.db import Database
from models.encoder import Encoder
from models.registry import get_version
from safeguards.metrics import Evaluation
from worker.context import PipelineContext
from worker.data import example_pools
from worker.evaluation import VersionEvaluator
from worker.settings import Settings


def as_stored_before_schema_2(data: dict[str, Any]) -> dict[str, Any]:
    """An evaluation dict written back in the layout of before schema 2: no schema key,
    "figures", recall@k and a bare mrr (tests/data has one written by hand)."""

    def old(name: str) -> str:
        return re.sub(r"mrr@\d+$", "mrr", name.replace("accuracy@", "recall@"))

    details = dict(data["details"])
    details["per_niche"] = {
        niche: {old(k): v for k, v in row.items()} for niche, row in details["per_niche"].items()
    }
    details["config"] = {**details["config"], "primary": old(details["config"]["primary"])}
    return {
        "primary": old(data["primary"]),
        "figures": [{**m, "name": old(m["name"])} for m in data["metrics"]],
        "details": details,
        "suggestions": data["suggestions"],
    }


def test_an_evaluation_stored_before_schema_2_is_reused_and_a_stale_one_is_not(
    settings: Settings, db: Database, encoder: Encoder
) -> None:
    ctx = PipelineContext(settings, db, encoder)
    with db.session() as session:
        row = get_version(session, "v1")
        current = row.evaluation["evaluation"]
        stored = as_stored_before_schema_2(current)
        assert {f["name"] for f in stored["figures"]} >= {"recall@3", "mrr", "tail_mrr"}
        # Marked, to tell the stored evaluation from one measured again.
        for figure in stored["figures"]:
            if figure["name"] == "vendi":
                figure["value"] += 1.0
        row.evaluation = {"key": "a key of the old scheme", "evaluation": stored}
        pools = example_pools(session)
    measured = Evaluation.from_dict(current)

    reused = VersionEvaluator(ctx, pools)("v1")
    assert reused.value("vendi") == measured.value("vendi") + 1.0
    assert reused.value("accuracy@3") == measured.value("accuracy@3")
    assert reused.value("tail_mrr@10") == measured.value("tail_mrr@10")

    # Measured another way (another match threshold): evaluated again and stored anew.
    stricter = PipelineContext(
        settings.with_overrides(evaluation={"match_threshold": 0.9}), db, encoder
    )
    again = VersionEvaluator(stricter, pools)("v1")
    # The same figure up to rounding: the two evaluations encode in batches of another shape.
    assert again.value("vendi") == pytest.approx(measured.value("vendi"), rel=1e-9)
    assert again.details["config"]["match_threshold"] == 0.9
    with db.session() as session:
        kept = get_version(session, "v1").evaluation
    assert kept == {"evaluation": again.to_dict()}
