"""Template filters: times, ages and metric values, the same way on every page."""

from __future__ import annotations

import datetime as dt

from webapp.dashboard.blueprint import bp


@bp.app_template_filter("utc")
def utc(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "—"


@bp.app_template_filter("ago")
def ago(value: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """'just now', '5 min ago', '3 h ago', '2 days ago'."""
    if value is None:
        return "—"
    seconds = ((now or dt.datetime.now(dt.UTC)) - value).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    days = int(seconds // 86400)
    return f"{days} day{'s' if days != 1 else ''} ago"


@bp.app_template_filter("metric")
def metric(value: float | None) -> str:
    """Three significant digits: enough to see a change the gate cares about."""
    return "—" if value is None else f"{value:.3g}"


@bp.app_template_filter("percent")
def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


@bp.app_template_filter("duration")
def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
