"""ID token validation (OIDC Core §3.1.3.7) on tokens the real provider issued, and the identity they name."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc.jwk import KeySet
from tests.sso.conftest import CLIENT_ID, SsoWorld
from tests.sso.sso_browser import Visitor

from testgate.app import create_app
from testgate.config import Settings
from testgate.http.outbound import Outbound
from testgate.oauth import sso
from testgate.oauth.settings import UpstreamSettings
from testgate.oauth.sso import Pending, Provider, SsoRefused
from testgate.platform.context import Platform

pytestmark = pytest.mark.slow


@dataclass
class Issued:
    """An ID token the provider issued to testgate's client, and what verifies it."""

    token: str
    keys: KeySet
    provider: Provider
    nonce: str

    def claims(self) -> dict[str, object]:
        payload = self.token.split(".")[1]
        return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


@pytest.fixture
async def issued(world: SsoWorld, visitor: Visitor) -> Issued:
    """Ada signs in at the provider for testgate's client; the code is redeemed as testgate would."""
    upstream, outbound, callback = world.upstream, Outbound(), world.capture.url
    provider = await sso.discover(upstream, outbound)
    pending = Pending.start()
    url = sso.authorization_url(provider, upstream, callback, pending)
    where = await visitor.go(url, "ada", lambda url: url.startswith(callback + "?"))
    code = parse_qs(urlsplit(where).query)["code"][0]
    token = await sso.redeem(provider, upstream, outbound, code, callback, pending.verifier)
    return Issued(token, await sso.signing_keys(provider, upstream, outbound), provider, pending.nonce)


def test_a_genuine_id_token_passes_and_names_a_verified_person(issued: Issued, world: SsoWorld) -> None:
    claims = sso.verify_id_token(issued.token, issued.keys, issued.provider, CLIENT_ID, issued.nonce)
    assert (claims["iss"], claims["aud"], claims["sub"]) == (world.op.issuer, CLIENT_ID, "ada")
    assert sso.identity(claims, world.upstream) == sso.Identity("ada", "ada@example.com", "Ada Lovelace")


def test_an_id_token_issued_to_another_client_is_refused(issued: Issued) -> None:
    # OIDC Core §3.1.3.7 step 3: this relying party must be the audience.
    with pytest.raises(SsoRefused, match="meant for another client"):
        sso.verify_id_token(issued.token, issued.keys, issued.provider, "another-relying-party", issued.nonce)


def test_an_expired_id_token_is_refused(issued: Issued) -> None:
    # OIDC Core §3.1.3.7 step 9: the current time must be before exp (plus the leeway).
    expires = int(str(issued.claims()["exp"]))
    with pytest.raises(SsoRefused, match="expired"):
        sso.verify_id_token(
            issued.token, issued.keys, issued.provider, CLIENT_ID, issued.nonce, now=expires + 6, leeway=5
        )


def test_an_id_token_with_another_nonce_is_refused(issued: Issued) -> None:
    # OIDC Core §3.1.3.7 step 11.
    with pytest.raises(SsoRefused, match="nonce"):
        sso.verify_id_token(issued.token, issued.keys, issued.provider, CLIENT_ID, "another-nonce")


def test_an_altered_or_unsigned_id_token_is_refused(issued: Issued) -> None:
    # OIDC Core §3.1.3.7 step 6; RFC 8725 §3.1: "none" is never accepted.
    header, payload, signature = issued.token.split(".")
    forged = dict(issued.claims(), sub="mallory")
    altered = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
    unsigned = base64.urlsafe_b64encode(b'{"alg":"none"}').decode().rstrip("=")
    for token in (f"{header}.{altered}.{signature}", f"{unsigned}.{payload}."):
        with pytest.raises(SsoRefused, match="signature"):
            sso.verify_id_token(token, issued.keys, issued.provider, CLIENT_ID, issued.nonce)


def test_an_id_token_from_another_issuer_is_refused(issued: Issued) -> None:
    # OIDC Core §3.1.3.7 step 2: iss must exactly equal the configured issuer.
    elsewhere = Provider("https://idp.example", *[""] * 3, (), ("RS256",))
    with pytest.raises(SsoRefused, match="another provider"):
        sso.verify_id_token(issued.token, issued.keys, elsewhere, CLIENT_ID, issued.nonce)


def test_only_a_verified_email_in_an_allowed_domain_identifies_a_person() -> None:
    upstream = UpstreamSettings(
        issuer="https://idp.example", client_id="c", client_secret="s", allowed_domains=["@Example.com"]
    )
    person = {"sub": "1", "email": "Ada@Example.com", "email_verified": True}
    assert sso.identity(person, upstream).email == "ada@example.com"
    for claims, reason in (
        ({**person, "email_verified": "true"}, "not verified"),
        ({**person, "email": "ada@elsewhere.example"}, "elsewhere.example may not sign in"),
        ({"sub": "1", "email_verified": True}, "did not share an email"),
    ):
        with pytest.raises(SsoRefused, match=reason):
            sso.identity(claims, upstream)


async def test_the_sign_in_endpoints_answer_404_when_no_provider_is_configured(
    settings: Settings, platform: Platform
) -> None:
    transport = httpx.ASGITransport(app=create_app(settings, platform=platform))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as http:
        answers = [(await http.get(path)).status_code for path in ("/oauth/sso/start", "/oauth/sso/callback")]
    assert answers == [404, 404]


def test_an_issuer_must_be_https_except_on_loopback() -> None:
    for issuer in ("http://idp.example", "https://idp.example/?tenant=1", "ftp://idp.example"):
        with pytest.raises(ValueError, match="https URL"):
            UpstreamSettings(issuer=issuer, client_id="c", client_secret="s")
    assert UpstreamSettings(issuer="https://idp.example/", client_id="c", client_secret="s").issuer.endswith("/")
