"""The dashboard's blueprint: HTML pages under /dashboard, kept out of the OpenAPI spec."""

from __future__ import annotations

from apiflask import APIBlueprint

bp = APIBlueprint(
    "dashboard",
    __name__,
    url_prefix="/dashboard",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
    # Pages for people, not part of the machine-readable API.
    enable_openapi=False,
)
