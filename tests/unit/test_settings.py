from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from shoal.cli import main
from shoal.common.settings import ShoalSettings, unknown_env_settings


def test_environment_variables_with_the_prefix_set_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_PORT", "6000")
    monkeypatch.setenv("SHOAL_INSECURE_DEV_MODE", "true")
    monkeypatch.setenv("SHOAL_KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    s = ShoalSettings()
    assert s.port == 6000 and s.insecure_dev_mode is True and s.kafka_bootstrap_servers == "k1:9092,k2:9092"


def test_values_are_parsed_strictly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_PORT", "fifty")
    with pytest.raises(ValidationError, match="port"):
        ShoalSettings()
    with pytest.raises(ValidationError):
        ShoalSettings(port="6000")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="Extra inputs"):
        ShoalSettings(prot=1)  # type: ignore[call-arg]


def test_secrets_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_CLICKHOUSE_PASSWORD", "hunter2")
    monkeypatch.setenv("SHOAL_ADMIN_API_KEY", "shoal_0123456789abcdef_supersecretsupersecret")
    s = ShoalSettings()
    for text in (repr(s), str(s), s.model_dump_json()):
        assert "hunter2" not in text and "supersecret" not in text
    assert isinstance(s.clickhouse_password, SecretStr) and s.clickhouse_password.get_secret_value() == "hunter2"


def test_tls_needs_both_files() -> None:
    with pytest.raises(ValidationError, match="SHOAL_TLS_KEY_FILE"):
        ShoalSettings(tls_cert_file=Path("/x.crt"))


def test_typos_in_the_environment_are_found() -> None:
    env = {"SHOAL_PROT": "1", "SHOAL_PORT": "1", "SHOAL_CACHE_DIR": "x", "HOME": "/"}
    assert unknown_env_settings(env) == ["SHOAL_PROT"]


def test_defaults_are_the_embedded_stores(tmp_path: Path) -> None:
    s = ShoalSettings(data_dir=tmp_path)
    assert s.resolved_metrics_url == f"chdb://{tmp_path / 'clickhouse'}"
    assert s.resolved_vectors_url == str(tmp_path / "milvus.db")
    assert s.kafka_bootstrap_servers == ""


def test_cli_reports_bad_settings_by_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SHOAL_GRACE_SECONDS", "-1")
    assert main(["settings"]) == 2
    assert "SHOAL_GRACE_SECONDS" in capsys.readouterr().err


def test_single_service_mode_needs_external_stores(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for var in ("SHOAL_METRICS_URL", "SHOAL_VECTORS_URL", "SHOAL_KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(var, raising=False)
    assert main(["serve", "--service", "ingest", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "SHOAL_METRICS_URL" in err and "SHOAL_KAFKA_BOOTSTRAP_SERVERS" in err


def test_settings_reference_lists_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    main(["settings", "--markdown"])
    out = capsys.readouterr().out
    for name in ShoalSettings.model_fields:
        assert f"`SHOAL_{name.upper()}`" in out


def test_the_settings_reference_lists_every_setting() -> None:
    from tests.conftest import REPO

    page = (REPO / "docs" / "reference" / "settings.md").read_text()
    missing = [name for name in ShoalSettings.model_fields if f"`SHOAL_{name.upper()}`" not in page]
    assert not missing, f"docs/reference/settings.md lacks {missing}: run `make docs`"
