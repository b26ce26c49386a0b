"""What every authorization-server handler needs: the platform, and the one CIMD fetcher of the app."""

from __future__ import annotations

from typing import cast

from fastapi import FastAPI, Request

from testgate.config import Settings
from testgate.http.outbound import Outbound
from testgate.oauth.cimd_fetch import Fetcher
from testgate.platform.context import Platform


def platform_of(request: Request) -> Platform:
    """The platform the application serves."""
    return cast(Platform, request.app.state.platform)


def fetcher_of(request: Request) -> Fetcher:
    """The application's CIMD fetcher (tests may replace ``app.state.oauth_fetcher``)."""
    return cast(Fetcher, request.app.state.oauth_fetcher)


def make_fetcher(settings: Settings, outbound: Outbound | None = None) -> Fetcher:
    """A fetcher configured from ``settings.oauth``; proxies come from the environment, read here once."""
    oauth = settings.oauth
    return Fetcher(
        outbound=outbound or Outbound.from_environ(ca_bundle=oauth.ca_bundle),
        allow_private=oauth.allow_private_cimd,
        max_bytes=oauth.cimd_max_bytes,
        timeout=oauth.cimd_timeout,
    )


def attach(app: FastAPI, settings: Settings) -> None:
    """Give ``app`` its fetcher."""
    app.state.oauth_fetcher = make_fetcher(settings)
