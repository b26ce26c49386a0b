"""Request ids for the REST API: assigned by the front door (``testgate.http.observe``), read here."""

from __future__ import annotations

from testgate.http.request_id import HEADER, accept_or_generate, request_id_of

__all__ = ["HEADER", "accept_or_generate", "request_id_of"]
