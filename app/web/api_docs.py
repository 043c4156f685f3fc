"""The API's documents, per tenant: the OpenAPI text and a Swagger UI page, both served by
the app (Swagger UI from the pinned swagger-ui-bundle package, never a CDN).

On a reseller's domain the documents carry the reseller's name: "Albedo" becomes the
tenant's display name and the platform's own setting names (``ALBEDO_…``) are left out,
since a reseller's customers cannot set them anyway. The platform's domain keeps them.
"""

from __future__ import annotations

import json
import re

from flask import Blueprint, Flask, Response, current_app, render_template

from tenants.context import current

bp = Blueprint("api_docs", __name__)
_CACHE_KEY = "albedo.openapi_text"
# "(ALBEDO_RATE_LIMIT_LICENSE_KEY / _IP)" or "set ALBEDO_SOMETHING": a setting name and the
# brackets or slash-joined siblings around it.
_SETTING = re.compile(r"\s*\(?\bALBEDO_[A-Z0-9_]*(?:\s*/\s*_[A-Z0-9_]+)*\)?")
_PRODUCT = re.compile(r"\bAlbedo\b")


def _platform_text() -> str:
    text = current_app.extensions.get(_CACHE_KEY)
    if text is None:
        from app.extensions import api

        text = json.dumps(api.spec.to_dict(), ensure_ascii=False)
        current_app.extensions[_CACHE_KEY] = text
    return text


def openapi_text_for(display_name: str, is_platform: bool) -> str:
    """The OpenAPI document as JSON text, in this tenant's words."""
    text = _platform_text()
    if is_platform:
        return text
    name = json.dumps(display_name, ensure_ascii=False)[1:-1]
    text = _SETTING.sub("", text)
    return _PRODUCT.sub(lambda _m: name, text)


def api_title() -> str:
    return f"{current().display_name} API"


@bp.get("/api/v1/openapi.json")
def openapi_json() -> Response:
    tenant = current()
    doc = json.loads(openapi_text_for(tenant.display_name, tenant.is_platform))
    doc.setdefault("info", {})["title"] = api_title()
    response = current_app.response_class(json.dumps(doc, ensure_ascii=False),
                                          mimetype="application/json")
    response.cache_control.max_age = 300
    return response


@bp.get("/api/docs")
def docs() -> str:
    return render_template("web/api_docs.html", title=api_title())


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
