"""Secrets at rest: sealed with AES-256-GCM under the server's key and bound to their place, opened
only with that key and place; the key from the setting, from a file beside the embedded store, or
none with a ClickHouse server (storing a secret is then refused, naming the setting)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from shoal.common.errors import FailedPrecondition
from shoal.common.secretbox import KEY_FILE, PREFIX, SecretBox, SecretUnreadable, box_for, derive_key
from shoal.common.settings import ShoalSettings

SECRET = "whsec-0123456789abcdef"
PASSPHRASE = "correct horse battery staple, at length"


def test_a_sealed_secret_opens_only_with_its_key_and_place() -> None:
    box = SecretBox(derive_key(PASSPHRASE))
    sealed = box.seal(SECRET, "automation/p/a1")
    assert sealed.startswith(PREFIX) and SECRET not in sealed
    assert sealed != box.seal(SECRET, "automation/p/a1")  # a new nonce each time
    assert box.open(sealed, "automation/p/a1") == SECRET
    assert SecretBox(derive_key(PASSPHRASE)).open(sealed, "automation/p/a1") == SECRET  # the same passphrase
    with pytest.raises(SecretUnreadable, match="UpdateAutomation"):
        box.open(sealed, "automation/q/a1")  # moved to another rule
    with pytest.raises(SecretUnreadable):
        SecretBox(derive_key(PASSPHRASE + "!")).open(sealed, "automation/p/a1")
    with pytest.raises(SecretUnreadable):
        box.open(sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB"), "automation/p/a1")
    assert box.seal("", "automation/p/a1") == "" and box.open("", "automation/p/a1") == ""
    assert box.open("kept-before-sealing", "automation/p/a1") == "kept-before-sealing"


def test_the_embedded_store_keeps_its_key_in_a_file_of_its_owner(tmp_path: Path) -> None:
    settings = ShoalSettings(data_dir=tmp_path / "data")
    sealed = box_for(settings).seal(SECRET, "x")
    key = tmp_path / "data" / KEY_FILE
    assert key.exists() and stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32
    assert box_for(ShoalSettings(data_dir=tmp_path / "data")).open(sealed, "x") == SECRET  # read back, not replaced
    elsewhere = ShoalSettings(data_dir=tmp_path / "other", metrics_url=f"chdb://{tmp_path / 'store' / 'ch'}")
    box_for(elsewhere)
    assert (tmp_path / "store" / KEY_FILE).exists()  # beside the store it protects
    configured = ShoalSettings(data_dir=tmp_path / "data", automations_secret_key=PASSPHRASE)
    assert box_for(configured).open(SecretBox(derive_key(PASSPHRASE)).seal(SECRET, "x"), "x") == SECRET


def test_a_clickhouse_server_without_a_key_refuses_to_store_secrets(tmp_path: Path) -> None:
    box = box_for(ShoalSettings(data_dir=tmp_path, metrics_url="https://clickhouse.example:8443"))
    with pytest.raises(FailedPrecondition, match="automations_secret_key") as info:
        box.seal(SECRET, "x")
    assert info.value.field == "automation.webhook.secret"
    with pytest.raises(SecretUnreadable, match="SHOAL_AUTOMATIONS_SECRET_KEY"):
        box.open(PREFIX + "AAAA", "x")
    assert not (tmp_path / KEY_FILE).exists()
    with pytest.raises(ValidationError, match="at least 32 characters"):
        ShoalSettings(automations_secret_key="short")
    assert PASSPHRASE not in repr(ShoalSettings(automations_secret_key=PASSPHRASE))
