"""Rendering console pages: the Jinja environment, its filters, and the headers every console response carries.

Pages load only this server's stylesheet and script (``script-src 'self'``, no inline script or style),
can't be framed, post forms only here, are never cached and send no Referer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
}
STATIC = "/ui/_static"
HOME = "/ui"


def when(value: datetime | None) -> str:
    """A time as people read it here: UTC, to the second."""
    if value is None:
        return "—"
    stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
    return stamp.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(ms: int | None) -> str:
    """A duration in milliseconds, in the largest unit that reads well."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def percent(rate: float | None) -> str:
    """A rate between 0 and 1 as a whole percentage."""
    return "—" if rate is None else f"{round(rate * 100)}%"


def size(count: int) -> str:
    """A byte count in B, KB or MB."""
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KB"
    return f"{count / 1024 / 1024:.1f} MB"


def sentence(text: str) -> str:
    """``text`` as a sentence: capitalized, with a full stop."""
    text = text.strip()
    if not text:
        return text
    first = text.split(maxsplit=1)[0]
    if first.isalpha():  # an identifier such as list_audit_events keeps its spelling
        text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else text + "."


templates = Environment(
    loader=PackageLoader("testgate", "web/templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(when=when, duration=duration, percent=percent, size=size, sentence=sentence)
templates.globals["static"] = STATIC


def secure(response: Response) -> Response:
    """Add the console's security headers a response does not set itself (downloads set their own CSP)."""
    for name, value in HEADERS.items():
        if name.lower() not in response.headers:
            response.headers[name] = value
    return response


def render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A console page with the security headers above."""
    html = templates.get_template(f"console/{template}").render(**context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def error_page(status: int, title: str, message: str, *, details: list[str] | None = None) -> HTMLResponse:
    """A refusal or failure, told to someone who is not signed in."""
    return render("error.html", status, title=title, message=message, details=details or [], back=HOME, c=None)
