"""Secrets kept encrypted at rest in the metrics store (an automation's webhook secret).

A :class:`SecretBox` seals a secret with AES-256-GCM under a key only the services hold, bound to
where it is kept (the associated data, e.g. the project and rule), and opens it again. A sealed
value reads ``enc:v1:`` and the base64 of a 12-byte nonce and the ciphertext with its tag.

The key (:func:`box_for`): derived with HKDF-SHA256 from ``automations_secret_key`` when it is set;
otherwise, with the embedded metrics store, a random key kept in ``secrets.key`` beside the store's
folder (under ``data_dir`` by default; created on first use, readable by its owner only). With a ClickHouse
server and no key set there is no key: storing a secret is refused, naming the setting, because
every server sharing that store must hold the same key.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shoal.common.errors import FailedPrecondition
from shoal.common.settings import ShoalSettings

PREFIX = "enc:v1:"
KEY_FILE = "secrets.key"
#: the least length of a configured key (it is a passphrase the key is derived from)
MIN_KEY_CHARS = 32
_INFO = b"shoal secrets at rest v1"


class SecretUnreadable(Exception):
    """A sealed secret this server's key cannot open (the key changed, or the value was altered)."""


class SecretBox:
    """Seals and opens secrets with one key; without a key (``key`` None) sealing is refused with
    ``missing`` as the reason."""

    def __init__(self, key: bytes | None, *, missing: str = "") -> None:
        if key is not None and len(key) != 32:
            raise ValueError("a secret box takes a 32-byte key")
        self._aead = AESGCM(key) if key is not None else None
        self.missing = missing

    @classmethod
    def ephemeral(cls) -> SecretBox:
        """A box with a random key that lives as long as the process (tests, tools)."""
        return cls(secrets.token_bytes(32))

    def seal(self, secret: str, where: str) -> str:
        """``secret`` sealed for the place ``where`` (e.g. "project/rule"); "" stays ""."""
        if not secret:
            return ""
        if self._aead is None:
            raise FailedPrecondition(self.missing, field="automation.webhook.secret")
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), where.encode())
        return PREFIX + base64.b64encode(nonce + sealed).decode()

    def open(self, value: str, where: str) -> str:
        """The secret a :meth:`seal` for ``where`` returned. A value without the prefix was stored
        before secrets were sealed and is returned as it is. Raises SecretUnreadable."""
        if not value.startswith(PREFIX):
            return value
        if self._aead is None:
            raise SecretUnreadable(self.missing)
        try:
            raw = base64.b64decode(value[len(PREFIX) :], validate=True)
            return self._aead.decrypt(raw[:12], raw[12:], where.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise SecretUnreadable(
                "the stored secret cannot be opened with this server's key (automations_secret_key changed, or "
                "secrets.key under data_dir was replaced): set the webhook's secret again (UpdateAutomation)"
            ) from exc


def derive_key(passphrase: str) -> bytes:
    """A 32-byte key from a configured passphrase (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(passphrase.encode())


def key_file(path: Path) -> bytes:
    """The 32-byte key in ``path``, created with a random key (mode 0600) when it does not exist."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) != 32:
            raise ValueError(f"{path} holds {len(key)} bytes, not a 32-byte key") from None
        return key
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


def box_for(settings: ShoalSettings) -> SecretBox:
    """The box of this server's secrets (see the module docstring)."""
    configured = settings.automations_secret_key
    if configured is not None:
        return SecretBox(derive_key(configured.get_secret_value()))
    url = settings.resolved_metrics_url
    if url.startswith("chdb://"):
        folder = Path(url.removeprefix("chdb://")).parent  # beside the embedded store's folder (data_dir)
        folder.mkdir(parents=True, exist_ok=True)
        return SecretBox(key_file(folder / KEY_FILE))
    return SecretBox(None, missing="no key to keep webhook secrets encrypted with: set automations_secret_key "
                     "(SHOAL_AUTOMATIONS_SECRET_KEY, the same on every server sharing the metrics store)")  # fmt: skip
