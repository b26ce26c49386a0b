"""Sign-in through an upstream OpenID Connect provider: testgate as a relying party (OIDC Core §3.1).

The flow is the authorization code flow with PKCE S256 (RFC 7636), ``state`` (RFC 6749 §10.12) and
``nonce`` (OIDC Core §3.1.2.1), all three kept in a short-lived cookie that is MAC'd with the server's key
and bound to the browser that started. The provider is found by discovery (OIDC Discovery §4) through the
outbound client (proxies, CA bundle), the code is redeemed with the client secret, and the ID token MUST
pass OIDC Core §3.1.3.7: a signature by a key of the provider's JWKS with an asymmetric algorithm, ``iss``
equal to the configured issuer, ``aud`` naming only this client, ``azp`` (when present) this client,
``exp`` in the future, ``iat`` not in the future, and the ``nonce`` sent. Only an ``email_verified`` email
identifies a person.

    SsoRefused      why a sign-in was refused (shown to the person, and audited)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry

from testgate import jsontext
from testgate.http.outbound import Outbound
from testgate.oauth.pkce import s256
from testgate.oauth.settings import UpstreamSettings

START = "/oauth/sso/start"
PENDING_TTL = 600
MAX_REQUEST = 3000  # the pending sign-in rides in a cookie, and browsers keep 4096 bytes of one (RFC 6265 §6.1)
MAX_DOCUMENT = 512 * 1024
# OIDC Core §3.1.3.7 step 6-8: asymmetric signatures only; "none" and HS* keyed by the client secret are refused.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class SsoRefused(Exception):
    """A sign-in through the provider was refused; ``str()`` is the reason, ``email`` who it was (if known)."""

    def __init__(self, reason: str, email: str = "") -> None:
        super().__init__(reason)
        self.reason, self.email = reason, email


@dataclass(frozen=True)
class Provider:
    """The provider's discovered endpoints (OIDC Discovery §3)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    token_auth_methods: tuple[str, ...]
    signing_algorithms: tuple[str, ...]


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in."""

    subject: str
    email: str
    name: str


@dataclass(frozen=True)
class Pending:
    """A started sign-in: what the callback must see again, and where the person goes afterwards."""

    state: str
    nonce: str
    verifier: str
    request: str  # the authorization request (query string) to resume, or ""
    next: str  # the console path to go to, or ""
    expires: int

    @classmethod
    def start(cls, *, request: str = "", next: str = "", now: float | None = None) -> Pending:
        """A new sign-in with fresh random ``state``, ``nonce`` and PKCE verifier."""
        expires = int(now if now is not None else time.time()) + PENDING_TTL
        state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        return cls(state, nonce, verifier, request, next, expires)


def login_link(upstream: UpstreamSettings | None, query: str) -> dict[str, str] | None:
    """The sign-in page's button for an authorization request (``query``), when a provider is configured."""
    if upstream is None or len(query) > MAX_REQUEST:
        return None
    return {"name": upstream.name, "url": START + "?" + urlencode({"request": query})}


def _mac(key: bytes, body: str) -> str:
    digest = hmac.new(key, b"sso-pending|" + body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def seal(key: bytes, pending: Pending) -> str:
    """The cookie value carrying ``pending``: base64url JSON and its HMAC-SHA256."""
    body = base64.urlsafe_b64encode(json.dumps(asdict(pending), separators=(",", ":")).encode()).decode().rstrip("=")
    return f"{body}.{_mac(key, body)}"


def unseal(key: bytes, value: str | None, now: float | None = None) -> Pending | None:
    """The sign-in a cookie carries, if its MAC is right and it has not expired."""
    body, _, mac = (value or "").partition(".")
    if not body or not hmac.compare_digest(_mac(key, body), mac):
        return None
    try:
        pending = Pending(**json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))
    except (ValueError, TypeError):
        return None
    return pending if pending.expires > (now if now is not None else time.time()) else None


async def _document(
    outbound: Outbound, method: str, url: str, timeout: float, **request: Any
) -> tuple[int, dict[str, Any]]:
    """The status and JSON object of one request, read up to ``MAX_DOCUMENT`` bytes."""
    try:
        async with outbound.client(url, timeout=timeout) as http, http.stream(method, url, **request) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT:
                    raise SsoRefused(f"the identity provider's answer from {url} is too large")
    except httpx.HTTPError as exc:
        raise SsoRefused(f"the identity provider could not be reached ({type(exc).__name__})") from None
    try:
        document = jsontext.loads(body)
    except ValueError:
        raise SsoRefused(f"the identity provider's answer from {url} is not JSON") from None
    if not isinstance(document, dict):
        raise SsoRefused(f"the identity provider's answer from {url} is not a JSON object")
    return response.status_code, document


async def discover(upstream: UpstreamSettings, outbound: Outbound) -> Provider:
    """The provider's metadata; its ``issuer`` MUST equal the configured one (OIDC Discovery §4.3)."""
    url = upstream.issuer.rstrip("/") + "/.well-known/openid-configuration"  # OIDC Discovery §4.1
    status, meta = await _document(outbound, "GET", url, upstream.timeout)
    if status != 200:
        raise SsoRefused(f"the identity provider's discovery document answered HTTP {status}")
    if meta.get("issuer") != upstream.issuer:
        raise SsoRefused("the identity provider's discovery document names another issuer")
    authorize, token, jwks = (meta.get(name) for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"))
    if not all(isinstance(e, str) and e.startswith(("https://", "http://")) for e in (authorize, token, jwks)):
        raise SsoRefused("the identity provider's discovery document lacks its endpoints")
    methods = meta.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    algorithms = meta.get("id_token_signing_alg_values_supported") or ["RS256"]
    return Provider(
        upstream.issuer, str(authorize), str(token), str(jwks), tuple(map(str, methods)), tuple(map(str, algorithms))
    )


def authorization_url(provider: Provider, upstream: UpstreamSettings, redirect_uri: str, pending: Pending) -> str:
    """Where the browser signs in: OIDC Core §3.1.2.1 with PKCE (RFC 7636 §4.3)."""
    params = {
        "response_type": "code",
        "client_id": upstream.client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(upstream.scopes),
        "state": pending.state,
        "nonce": pending.nonce,
        "code_challenge": s256(pending.verifier),
        "code_challenge_method": "S256",
    }
    separator = "&" if "?" in provider.authorization_endpoint else "?"
    return provider.authorization_endpoint + separator + urlencode(params)


async def redeem(
    provider: Provider, upstream: UpstreamSettings, outbound: Outbound, code: str, redirect_uri: str, verifier: str
) -> str:
    """The ID token the code is exchanged for (OIDC Core §3.1.3.1), the client authenticating with its secret."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier}
    secret = upstream.client_secret.get_secret_value()
    request: dict[str, Any] = {"data": form, "headers": {"Accept": "application/json"}}
    if "client_secret_basic" in provider.token_auth_methods or "client_secret_post" not in provider.token_auth_methods:
        # RFC 6749 §2.3.1: the id and secret are form-encoded before they are joined and base64-encoded.
        pair = f"{_form(upstream.client_id)}:{_form(secret)}".encode()
        request["headers"]["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    else:
        form |= {"client_id": upstream.client_id, "client_secret": secret}
    status, answer = await _document(outbound, "POST", provider.token_endpoint, upstream.timeout, **request)
    if status != 200:
        error = str(answer.get("error", f"HTTP {status}"))[:100]
        raise SsoRefused(f"the identity provider refused the sign-in code ({error})")
    id_token = answer.get("id_token")
    if not isinstance(id_token, str):
        raise SsoRefused("the identity provider returned no ID token (is the openid scope allowed?)")
    return id_token


def _form(value: str) -> str:
    return urlencode({"": value})[1:]


async def signing_keys(provider: Provider, upstream: UpstreamSettings, outbound: Outbound) -> KeySet:
    """The provider's signature keys (``use`` absent or ``sig``), fetched now, so rotations are followed."""
    status, document = await _document(outbound, "GET", provider.jwks_uri, upstream.timeout)
    keys = document.get("keys")
    if status != 200 or not isinstance(keys, list):
        raise SsoRefused("the identity provider's key set could not be read")
    usable = [k for k in keys if isinstance(k, dict) and k.get("use", "sig") == "sig" and k.get("kty") != "oct"]
    try:
        return KeySet.import_key_set({"keys": usable})
    except (JoseError, ValueError) as exc:
        raise SsoRefused(f"the identity provider's key set is invalid ({exc})") from None


def verify_id_token(
    token: str, keys: KeySet, provider: Provider, client_id: str, nonce: str, *, now: int | None = None, leeway: int = 0
) -> dict[str, Any]:
    """The ID token's claims after OIDC Core §3.1.3.7; ``SsoRefused`` names the first check that failed."""
    allowed = [a for a in provider.signing_algorithms if a in SIGNING_ALGORITHMS]
    try:
        claims = jwt.decode(token, keys, algorithms=allowed).claims
    except (JoseError, ValueError) as exc:
        raise SsoRefused(f"the ID token's signature is not valid ({type(exc).__name__})") from None
    if claims.get("iss") != provider.issuer:
        raise SsoRefused("the ID token was issued by another provider")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    # Step 3: this client MUST be an audience, and no audience this client doesn't trust may be added.
    if audiences != [client_id] or claims.get("azp", client_id) != client_id:
        raise SsoRefused("the ID token is meant for another client (aud/azp)")
    essential: ClaimsOption = {"essential": True}
    clock = int(now if now is not None else time.time())
    try:
        JWTClaimsRegistry(now=clock, leeway=leeway, exp=essential, iat=essential, sub=essential).validate(claims)
    except JoseError as exc:
        raise SsoRefused(f"the ID token is expired or malformed ({exc.error})") from None
    if not isinstance(claims["iat"], int | float) or claims["iat"] > clock + leeway:
        raise SsoRefused("the ID token was issued in the future")
    if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
        raise SsoRefused("the ID token's nonce is not the one this sign-in sent (replay?)")
    return claims


def identity(claims: dict[str, Any], upstream: UpstreamSettings) -> Identity:
    """The person in verified claims: a verified email is REQUIRED, in an allowed domain when a list is set."""
    email = claims.get("email")
    if not isinstance(email, str) or not email:
        raise SsoRefused("the identity provider did not share an email address (add the email scope)")
    address = email.strip().lower()
    if claims.get("email_verified") is not True:
        raise SsoRefused("the identity provider has not verified this email address", address)
    domain = address.rpartition("@")[2]
    if upstream.allowed_domains and domain not in upstream.allowed_domains:
        raise SsoRefused(f"email addresses at {domain} may not sign in here", address)
    name = claims.get("name")
    return Identity(str(claims["sub"]), address, name if isinstance(name, str) else "")
