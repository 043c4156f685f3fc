"""The identity feature's reads in the read lane (app/api/lane): ``GET /api/v1/me``."""

from __future__ import annotations

from typing import Any

from app.api.lane.routes import LaneRequest, answer_route
from app.auth.api import me_answer
from app.auth.schemas import MeSchema

_SCHEMA = MeSchema()


def _me(request: LaneRequest) -> Any:
    if request.principal.email is None:
        return None  # read with the principal since; the route reads it
    return _SCHEMA.dump(me_answer(request.principal, request.tenant, request.principal.email))


answer_route("/api/v1/me", _me)
