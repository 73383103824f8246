"""Where the labeling bridge finds analysis and the sampler: named by SHOAL_ANALYSIS_TARGET and
SHOAL_SAMPLER_TARGET, or this server's own port when they run in it; a bridge on its own without
them does not start, and says what to set."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.cli import main
from shoal.common.errors import ConfigurationError
from shoal.common.settings import ShoalSettings
from shoal.labeling_bridge.service import owner_targets


def test_a_bridge_on_its_own_needs_both_targets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for var in ("SHOAL_ANALYSIS_TARGET", "SHOAL_SAMPLER_TARGET"):
        monkeypatch.delenv(var, raising=False)
    # external stores named (nothing listens: they are reached lazily, after the check)
    monkeypatch.setenv("SHOAL_METRICS_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SHOAL_VECTORS_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SHOAL_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    assert main(["serve", "--service", "labeling_bridge", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "SHOAL_ANALYSIS_TARGET" in err and "SHOAL_SAMPLER_TARGET" in err


def test_targets_come_from_the_settings_or_this_servers_port() -> None:
    with pytest.raises(ConfigurationError, match="SHOAL_SAMPLER_TARGET") as info:
        owner_targets(ShoalSettings(analysis_target="analysis:50051"))
    assert "SHOAL_ANALYSIS_TARGET" not in str(info.value)
    named = owner_targets(ShoalSettings(analysis_target="analysis:50051", sampler_target="sampler:50051"))
    assert named() == {"analysis": "analysis:50051", "sampler": "sampler:50051"}
    # all in one server: its own port, unless a target names another place
    local = owner_targets(ShoalSettings(sampler_target="sampler:50051"), ("analysis", "sampler"), lambda: 6000)
    assert local() == {"analysis": "127.0.0.1:6000", "sampler": "sampler:50051"}
    # a service this server does not run is not looked for on its port
    with pytest.raises(ConfigurationError, match="SHOAL_SAMPLER_TARGET"):
        owner_targets(ShoalSettings(), ("analysis", "labeling_bridge"), lambda: 6000)
