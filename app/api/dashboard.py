"""/v1/gateway/admin: the admin dashboard's shell, script and style sheet.

Public, and holding no data: the page asks the admin API for everything,
with the token the admin types (kept in the tab's sessionStorage). The
Content-Security-Policy allows this origin's script and style only - no
inline script, no other origin, no frames.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from flask import Blueprint, Response

bp = Blueprint("dashboard", __name__, url_prefix="/v1/gateway/admin")

FILES = {
    "": ("index.html", "text/html; charset=utf-8"),
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
    "app.css": ("app.css", "text/css; charset=utf-8"),
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def _read(name: str) -> bytes:
    return resources.files("app").joinpath("dashboard", name).read_bytes()


def _serve(path: str) -> Response:
    name, mimetype = FILES[path]
    return Response(_read(name), content_type=mimetype, headers=HEADERS)


@bp.get("")
def shell() -> Response:
    return _serve("")


@bp.get("/app.js")
def script() -> Response:
    return _serve("app.js")


@bp.get("/app.css")
def style() -> Response:
    return _serve("app.css")
