"""API keys: each key is scoped to a list of projects (``*`` is an administrator), and only its
SHA-256 is stored.

A key looks like ``shoal_<key id>_<secret>``. Clients send it in the ``authorization`` metadata
(``Bearer <key>``) or in ``x-api-key``. The key id finds the stored record; the hash of the whole
key is compared in constant time. Keys are created with ``shoal keys create`` (or the
``SHOAL_ADMIN_API_KEY`` secret at start) and are shown once.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shoal.common.errors import FailedPrecondition, InvalidArgument, PermissionDenied, Unauthenticated
from shoal.common.settings import API_KEY_RE
from shoal.common.stores.metrics import MetricsStore, Migration

log = logging.getLogger(__name__)

ADMIN_SCOPE = "*"
_KEY_RE = API_KEY_RE
_PROJECT_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")

MIGRATIONS = (
    Migration(
        component="common",
        version=1,
        name="api_keys",
        statements=(
            "CREATE TABLE IF NOT EXISTS api_keys ("
            " key_id String, key_hash String, projects Array(String), description String,"
            " created_at DateTime64(3, 'UTC'), revoked UInt8 DEFAULT 0, revision UInt64)"
            " ENGINE = ReplacingMergeTree(revision) ORDER BY key_id",
        ),
    ),
)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key and the projects it may touch."""

    key_id: str
    projects: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_admin(self) -> bool:
        return ADMIN_SCOPE in self.projects

    def allows(self, project: str) -> bool:
        return self.is_admin or project in self.projects

    def require(self, project: str) -> None:
        if not self.allows(project):
            raise PermissionDenied(f"API key {self.key_id} is not scoped to project {project!r}")

    def require_admin(self, what: str) -> None:
        if not self.is_admin:
            raise PermissionDenied(f"{what} needs an administrator key (scope '*'); key {self.key_id} is not one")


DEV_PRINCIPAL = Principal(key_id="insecure-dev-mode", projects=frozenset({ADMIN_SCOPE}))

_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("shoal_principal", default=None)


def current_principal() -> Principal:
    """The caller of the RPC being served (set by the auth interceptor)."""
    principal = _current.get()
    if principal is None:
        raise Unauthenticated("no authenticated caller")
    return principal


def set_principal(principal: Principal | None) -> contextvars.Token[Principal | None]:
    return _current.set(principal)


def reset_principal(token: contextvars.Token[Principal | None]) -> None:
    _current.reset(token)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_key(key: str) -> str:
    """The key id of a well-formed key; raises Unauthenticated otherwise."""
    m = _KEY_RE.match(key.strip())
    if not m:
        raise Unauthenticated("malformed API key: expected shoal_<id>_<secret>")
    return m.group(1)


def generate_key() -> tuple[str, str]:
    """A new (key id, key)."""
    key_id = secrets.token_hex(8)
    return key_id, f"shoal_{key_id}_{secrets.token_urlsafe(32)}"


def check_scopes(projects: Iterable[str]) -> list[str]:
    scopes = sorted(set(projects))
    if not scopes:
        raise InvalidArgument("a key needs at least one project, or '*' for an administrator", field="projects")
    for p in scopes:
        if p != ADMIN_SCOPE and not _PROJECT_RE.match(p):
            raise InvalidArgument(f"{p!r} is not a project name", field="projects")
    return scopes


@dataclass(frozen=True)
class _Record:
    key_hash: str
    projects: frozenset[str]
    revoked: bool


class KeyStore:
    """API keys in the metrics store, with a short cache so that authenticating a call does not
    cost a query; a revoked key stops working within ``cache_seconds``."""

    def __init__(self, metrics: MetricsStore, *, cache_seconds: float = 10.0) -> None:
        self.metrics = metrics
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, _Record | None]] = {}
        self._lock = threading.Lock()

    def create(self, projects: Iterable[str], *, description: str = "", key: str | None = None) -> tuple[str, str]:
        """Stores a key scoped to ``projects``; returns (key id, key). The key is not kept."""
        scopes = check_scopes(projects)
        if key is None:
            key_id, key = generate_key()
        else:
            key_id = parse_key(key)
        now = datetime.now(UTC)
        self.metrics.insert(
            "api_keys",
            [[key_id, hash_key(key), scopes, description, now, 0, time.time_ns()]],
            ["key_id", "key_hash", "projects", "description", "created_at", "revoked", "revision"],
        )
        self._forget(key_id)
        log.info("API key %s created for projects %s", key_id, scopes)
        return key_id, key

    def ensure(self, key: str, projects: Iterable[str], *, description: str = "") -> str:
        """Registers a known key (e.g. from a Secret) unless it is stored already with the same
        scopes; returns its id. A revoked key stays revoked: FailedPrecondition, nothing stored."""
        key = key.strip()
        key_id = parse_key(key)
        record = self._load(key_id)
        if record is not None and record.revoked:
            raise FailedPrecondition(f"API key {key_id} was revoked; it is not registered again")
        scopes = frozenset(check_scopes(projects))
        if record is None or record.key_hash != hash_key(key) or record.projects != scopes:
            self.create(scopes, description=description, key=key)
        return key_id

    def revoke(self, key_id: str) -> None:
        record = self._load(key_id)
        if record is None:
            raise InvalidArgument(f"no API key {key_id}", field="key_id")
        self.metrics.insert(
            "api_keys",
            [[key_id, record.key_hash, sorted(record.projects), "", datetime.now(UTC), 1, time.time_ns()]],
            ["key_id", "key_hash", "projects", "description", "created_at", "revoked", "revision"],
        )
        self._forget(key_id)
        log.info("API key %s revoked", key_id)

    def list(self) -> list[dict[str, object]]:
        return self.metrics.query(
            "SELECT key_id, projects, description, created_at, revoked FROM api_keys FINAL ORDER BY created_at"
        ).dicts()

    def authenticate(self, key: str) -> Principal:
        key_id = parse_key(key)
        record = self._cached(key_id)
        if record is None or not hmac.compare_digest(record.key_hash, hash_key(key.strip())):
            raise Unauthenticated(f"unknown API key {key_id}")
        if record.revoked:
            raise Unauthenticated(f"API key {key_id} was revoked")
        return Principal(key_id=key_id, projects=record.projects)

    def _cached(self, key_id: str) -> _Record | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key_id)
            if hit is not None and now - hit[0] < self.cache_seconds:
                return hit[1]
        record = self._load(key_id)
        with self._lock:
            self._cache[key_id] = (now, record)
        return record

    def _forget(self, key_id: str) -> None:
        with self._lock:
            self._cache.pop(key_id, None)

    def _load(self, key_id: str) -> _Record | None:
        rows = self.metrics.query(
            "SELECT key_hash, projects, revoked FROM api_keys FINAL WHERE key_id = {key_id:String}",
            {"key_id": key_id},
        ).rows
        if not rows:
            return None
        key_hash, projects, revoked = rows[0]
        return _Record(key_hash=key_hash, projects=frozenset(projects), revoked=bool(revoked))
