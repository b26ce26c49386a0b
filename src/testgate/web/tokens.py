"""API token pages: list with last use and expiry, create and rotate (the secret shown once), revoke.

    GET  /ui/{org}/{env}/tokens                  token.list
    POST /ui/{org}/{env}/tokens                  token.create: the page shows the secret, once
    POST /ui/{org}/{env}/tokens/{id}/rotate      token.rotate: the page shows the new secret, once
    GET  /ui/{org}/{env}/tokens/{id}/revoke      the confirmation page (token.list)
    POST /ui/{org}/{env}/tokens/{id}/revoke      token.revoke, confirmed only with the page's value

A secret appears only in the answer to the post that made it; that page is never cached. The create and
rotate forms are single-use (``web.once``): sent again (a reload of the secret page, a replay), they make
nothing and say so.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import HTMLResponse, RedirectResponse

from testgate.access.principal import Permission
from testgate.errors import NotFound
from testgate.operations.access import TokenInfo, TokenList, TokenSecret
from testgate.web.context import Console, console_of
from testgate.web.routing import ConsoleRoute

router = APIRouter(prefix="/ui/{org}/{env}", route_class=ConsoleRoute, include_in_schema=False)
Con = Annotated[Console, Depends(console_of)]
TokenId = Annotated[str, Path(max_length=26)]
EXPIRIES = (("P7D", "7 days"), ("P30D", "30 days"), ("P90D", "90 days"), ("P365D", "365 days"), ("", "never"))
GRACES = (("", "old secret ends now"), ("PT1H", "old secret: 1 more hour"), ("P1D", "old secret: 1 more day"))
CREATE, ROTATE, REVOKE = "token.create", "token.rotate", "token.revoke"


def grant_choices(c: Console) -> list[tuple[str, list[str]]]:
    """Each visible environment and the permissions a token may get there (never more than held)."""
    levels = (Permission.READ, Permission.RUN, Permission.WRITE, Permission.ADMIN)
    return [(env.slug, [p.label for p in levels if p <= env.permission]) for env in c.identity.environments]


def token_args(c: Console, fields: dict[str, str]) -> dict[str, Any]:
    """``token.create`` arguments from the form; an admin token names no environments."""
    role = fields.get("role") or "member"
    grants = {env: fields[f"env.{env}"] for env, _ in grant_choices(c) if fields.get(f"env.{env}")}
    args: dict[str, Any] = {"name": fields.get("name", "").strip(), "role": role}
    args["environments"] = {} if role == "admin" else grants
    args["expires"] = fields.get("expires") or None
    return args


async def _listed(c: Console) -> TokenList:
    return await c.run(TokenList, "token.list", scope="organization")


@router.get("/tokens", response_class=HTMLResponse)
async def tokens(c: Con) -> HTMLResponse:
    """Your tokens (every token of the organization for owners and admins), never their secrets."""
    listed = await _listed(c)
    return c.page(
        "tokens.html",
        title="API tokens",
        section="tokens",
        tokens=listed.tokens,
        me=c.identity.user.id,
        choices=grant_choices(c),
        expiries=EXPIRIES,
        graces=GRACES,
    )


def _secret_page(c: Console, made: TokenSecret, verb: str) -> HTMLResponse:
    return c.page(
        "token_secret.html",
        201 if verb == "created" else 200,
        title=f"Token {verb}",
        section="tokens",
        made=made,
        verb=verb,
    )


def _sent_before(c: Console, verb: str) -> HTMLResponse:
    """The answer to a create or rotate form sent again: nothing is made, the first post's token stands."""
    message = (
        f"This form was already submitted: the token was {verb} then, and its secret was shown that once. "
        "Nothing new was made; find the token in the list."
    )
    return c.page(
        "error.html",
        409,
        title="Already submitted",
        section="tokens",
        message=message,
        details=[],
        back=c.base + "/tokens",
        back_label="Back to the list",
    )


@router.post("/tokens")
async def create_token(c: Con) -> HTMLResponse:
    """Create a token and show its secret this once; the same form sent again creates nothing."""
    fields = await c.form()
    async with c.first_submission(fields, CREATE) as first:
        if not first:
            return _sent_before(c, "created")
        made = await c.run(TokenSecret, CREATE, token_args(c, fields), scope="organization")
    return _secret_page(c, made, "created")


@router.post("/tokens/{id}/rotate")
async def rotate_token(c: Con, id: TokenId) -> HTMLResponse:
    """Give a token a new secret (the old one works for the chosen grace) and show it this once."""
    fields = await c.form()
    args = {"id": id, "grace": fields.get("grace") or None}
    async with c.first_submission(fields, ROTATE, id) as first:
        if not first:
            return _sent_before(c, "rotated")
        made = await c.run(TokenSecret, ROTATE, args, scope="organization")
    return _secret_page(c, made, "rotated")


def _find(listed: TokenList, token_id: str) -> TokenInfo:
    found = next((t for t in listed.tokens if t.id == token_id), None)
    if found is None:
        raise NotFound(f"no token {token_id!r} that you can manage")
    return found


@router.get("/tokens/{id}/revoke", response_class=HTMLResponse)
async def confirm_revoke(c: Con, id: TokenId) -> HTMLResponse:
    """Ask before revoking: the only page that hands out the value the revoke form needs."""
    token = _find(await _listed(c), id)
    return c.page(
        "confirm.html",
        title="Revoke token?",
        section="tokens",
        question=f"Revoke token '{token.name}' ({token.prefix}…)? Anything using it stops working at once.",
        action=f"{c.base}/tokens/{token.id}/revoke",
        confirm=c.confirmation(REVOKE, token.id),
        button="Revoke token",
        cancel=f"{c.base}/tokens",
    )


@router.post("/tokens/{id}/revoke")
async def revoke_token(c: Con, id: TokenId) -> RedirectResponse:
    """Revoke the token the person confirmed; without the confirmation page's value dispatch refuses."""
    fields = await c.form()
    await c.run(TokenInfo, REVOKE, {"id": id}, scope="organization", confirm=c.confirmer(fields, REVOKE, id))
    return RedirectResponse(f"{c.base}/tokens", status_code=303)
