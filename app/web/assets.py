"""Static files served by the app itself: no CDN, so offline installs and strict CSPs work.

``asset_url("app.css")`` names a file by its content hash (``/static/app.css?v=<hash>``): a
changed file gets a new URL, so responses can be cached for a year. Vendored browser assets
(Swagger UI from the pinned ``swagger-ui-bundle`` package) are served the same way under
``/static/vendor/<package>/``. The per-tenant theme (brand colours as CSS variables) is a
tiny stylesheet named by a hash of the colours, so the layout needs no inline style.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    redirect,
    request,
    send_from_directory,
    url_for,
)

from tenants.context import current_or_none
from tenants.contrast import readable_on

STATIC_DIR = Path(__file__).resolve().parent / "static"
YEAR = 31536000
bp = Blueprint("assets", __name__)


def _vendor_dirs() -> dict[str, Path]:
    """Browser packages installed from PyPI, by the name their URLs use."""
    dirs: dict[str, Path] = {}
    try:
        import swagger_ui_bundle
    except ImportError:  # pragma: no cover - a dependency; the docs page says so if absent
        pass
    else:
        dirs["swagger-ui"] = Path(swagger_ui_bundle.swagger_ui_path)
    return dirs


@lru_cache(maxsize=256)
def _hash_of(path: str, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def _resolve(filename: str) -> Path | None:
    if filename.startswith("vendor/"):
        parts = filename.split("/", 2)
        if len(parts) < 3:
            return None
        base, rest = _vendor_dirs().get(parts[1]), parts[2]
    else:
        base, rest = STATIC_DIR, filename
    if base is None or not rest:
        return None
    path = (base / rest).resolve()
    if not path.is_file() or base.resolve() not in path.parents:
        return None
    return path


def asset_url(filename: str) -> str:
    """The cache-busting URL of a static file (its content hash in the query)."""
    path = _resolve(filename)
    if path is None:
        raise FileNotFoundError(filename)
    return url_for("assets.static", filename=filename,
                   v=_hash_of(str(path), path.stat().st_mtime_ns))


@bp.get("/static/<path:filename>")
def static(filename: str) -> Response:
    path = _resolve(filename)
    if path is None:
        abort(404)
    response = send_from_directory(path.parent, path.name, max_age=300)
    if request.args.get("v") == _hash_of(str(path), path.stat().st_mtime_ns):
        response.cache_control.max_age = YEAR
        response.cache_control.public = True
        response.cache_control.immutable = True
    return response


def theme_css(primary: str, accent: str) -> str:
    return (":root{"
            f"--brand-primary:{primary};--brand-on-primary:{readable_on(primary)};"
            f"--brand-accent:{accent};--brand-on-accent:{readable_on(accent)}"
            "}\n")


def _theme_colours() -> tuple[str, str]:
    tenant = current_or_none()
    if tenant is None:
        return "#374151", "#6b7280"
    return tenant.primary_color, tenant.accent_color


def theme_url() -> str:
    primary, accent = _theme_colours()
    digest = hashlib.sha256(f"{primary}{accent}".encode()).hexdigest()[:12]
    return url_for("assets.theme", v=digest)


@bp.get("/theme.css")
def theme() -> Response:
    """The tenant's colours as CSS variables; the URL changes when the colours do."""
    response = Response(theme_css(*_theme_colours()), mimetype="text/css")
    response.cache_control.public = True
    response.cache_control.max_age = YEAR if request.args.get("v") else 300
    return response


@bp.get("/favicon.ico")
def favicon() -> Response:
    """Browsers ask for /favicon.ico on their own: the tenant's favicon, or nothing (no 404
    in every page's console)."""
    tenant = current_or_none()
    if tenant is not None and tenant.favicon_url:
        return redirect(tenant.favicon_url)
    response = Response(status=204)
    response.cache_control.max_age = 3600
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.add_template_global(asset_url)
    app.add_template_global(theme_url)
