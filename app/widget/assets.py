"""/widget.js: the chat widget's script, served by every site from its own domain.

Its URL is fixed (pages embed it once and never change the tag), so the answer is cached
briefly and revalidated with a content-hash ETag: a new release reaches pages within five
minutes and costs an unchanged page a 304.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from flask import Blueprint, Response, request

bp = Blueprint("widget_assets", __name__)
SCRIPT = Path(__file__).resolve().parent / "static" / "widget.js"


@lru_cache(maxsize=1)
def _script() -> tuple[bytes, str]:
    body = SCRIPT.read_bytes()
    return body, hashlib.sha256(body).hexdigest()[:32]


@bp.get("/widget.js")
def widget_js() -> Response:
    body, etag = _script()
    headers = {"ETag": f'"{etag}"', "Cache-Control": "public, max-age=300",
               # Loadable by pages that require cross-origin opt-in (COEP).
               "Cross-Origin-Resource-Policy": "cross-origin",
               "X-Content-Type-Options": "nosniff"}
    if request.if_none_match.contains(etag):
        return Response(status=304, headers=headers)
    return Response(body, mimetype="text/javascript", headers=headers)
