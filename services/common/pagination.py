"""Opaque page tokens for List* RPCs.

A token carries the offset of the next page and a fingerprint of the request it belongs to, so a
token replayed with a different filter is refused instead of silently skipping rows.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from shoal.common.errors import InvalidArgument
from shoal.common.v1 import common_pb2

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Page:
    offset: int
    size: int


def _fingerprint(scope: str) -> str:
    return hashlib.sha256(scope.encode()).hexdigest()[:12]


def read_page(page_size: int, page_token: str, *, scope: str) -> Page:
    """The page a request asks for. ``scope`` identifies the query (its filters)."""
    if page_size < 0:
        raise InvalidArgument(f"must be >= 0, got {page_size}", field="page.page_size")
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    if not page_token:
        return Page(0, size)
    try:
        raw = json.loads(base64.urlsafe_b64decode(page_token.encode() + b"==="))
        offset, fp = int(raw["o"]), str(raw["f"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument("is not a token this server issued", field="page.page_token") from exc
    if fp != _fingerprint(scope) or offset < 0:
        raise InvalidArgument("belongs to a different query", field="page.page_token")
    return Page(offset, size)


def next_token(page: Page, returned: int, total: int, *, scope: str) -> str:
    nxt = page.offset + returned
    if returned == 0 or nxt >= total:
        return ""
    raw = json.dumps({"o": nxt, "f": _fingerprint(scope)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def pages(fetch: Callable[[common_pb2.PageRequest], Any], page_size: int = MAX_PAGE_SIZE) -> Iterator[Any]:
    """Every page of a paged RPC: ``fetch(page)`` sends the request with ``page`` and returns its answer,
    whose ``page.next_page_token`` leads to the next one."""
    token = ""
    while True:
        resp = fetch(common_pb2.PageRequest(page_size=page_size, page_token=token))
        yield resp
        token = resp.page.next_page_token
        if not token:
            return
