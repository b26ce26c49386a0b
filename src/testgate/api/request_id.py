"""Request ids for the REST API: the middleware lives in ``testgate.http.request_id`` (the front door's stack)."""

from __future__ import annotations

from testgate.http.request_id import HEADER, RequestIdMiddleware, accept_or_generate, request_id_of

__all__ = ["HEADER", "RequestIdMiddleware", "accept_or_generate", "request_id_of"]
