"""Unexpected exceptions (the 500s), counted by the feature area they came from."""

from __future__ import annotations

import traceback
from pathlib import Path

from app.ops import metrics

_ROOT = Path(__file__).resolve().parent.parent.parent
_AREAS = ("agents", "auth", "billing", "email", "integrations", "licensing", "ops", "web",
          "api", "tenants", "jobs")
_SIGNING = str(Path("app") / "licensing" / "signing.py")


def area_of(error: BaseException) -> tuple[str, bool]:
    """(the innermost Albedo package in the traceback, whether license signing raised it)."""
    area, signing = "other", False
    for frame in traceback.extract_tb(error.__traceback__):
        try:
            parts = Path(frame.filename).resolve().relative_to(_ROOT).parts
        except ValueError:
            continue  # a library's frame
        if parts[0] == "app" and len(parts) > 2:
            area = parts[1]
        elif parts[0] in ("tenants", "jobs"):
            area = parts[0]
        signing = signing or str(Path(*parts)) == _SIGNING
    return metrics.bounded(area, _AREAS), signing


def note_unexpected(error: BaseException) -> None:
    """Count a 500 (Albedo's handler calls this); never raises."""
    try:
        area, signing = area_of(error)
        metrics.unhandled_errors.labels(area).inc()
        if signing:
            metrics.license_signing_errors.inc()
    except Exception:  # counting must never change the answer
        return
