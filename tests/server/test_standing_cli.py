"""`shoal standing`: a standing campaign started, listed, shown, scored locally and stopped from
the command line, on the embedded server; the local scoring picks what the server then keeps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.server.conftest import Running
from tests.server.test_sampler_standing import (
    CHUNK,
    arrival_order,
    create_stream_project,
    stream_data,
    upload_batch,
)


def test_the_cli_starts_shows_scores_and_stops_a_standing_campaign(
    shared: Running, project: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from shoal.cli import main

    connection = ["--target", shared.target, "--api-key", shared.admin_key, "--project", project]

    def shoal(*argv: str, code: int = 0) -> tuple[str, str]:
        capsys.readouterr()
        assert main(["standing", *argv, *connection]) == code
        got = capsys.readouterr()
        return got.out, got.err

    d = stream_data(uploads=2, seed=3)
    first, second = d["batches"]
    with shared.client(shared.admin_key) as c:
        create_stream_project(c, project, d)
        out, _ = shoal("start", "--name", "fog-cones", "--pool", "pool", "--space", "clip", "--threshold", "0.85",
                       "--budget", "45", "--seed-segment", "seeds", "--min-distance", "0.05", "--filter",
                       '{"all": [{"field": "metadata.weather", "equals": {"stringValue": "fog"}}]}')  # fmt: skip
        assert out.split()[:2] == ["fog-cones", "filling"] and "similarity >= 0.85, distance >= 0.05" in out
        assert "0 of 45 kept, 0 judged" in out
        _, err = shoal("start", "--name", "bad", "--pool", "pool", "--space", "clip", "--threshold", "1.5",
                       "--budget", "3", "--seed-segment", "seeds", code=2)  # fmt: skip
        assert "INVALID_ARGUMENT" in err and "similarity_threshold" in err

        upload_batch(c, project, first)
        assert c.wait_for_standing_campaign(project, "fog-cones", judged=len(first["ids"])).campaign.kept < 45
        # the second batch scored on this machine (the filter read from the frames' weather)
        ids, x, weather = arrival_order([second])
        np.save(tmp_path / "x.npy", x)
        (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n")
        fog = np.asarray([w == "fog" for w in weather])
        local = c.score_for_campaign(project, "fog-cones", ids, x, passes=fog, chunk_size=CHUNK)
        out, err = shoal("score", "fog-cones", "--embeddings", str(tmp_path / "x.npy"), "--frame-ids",
                         str(tmp_path / "ids.txt"), "--chunk-size", str(CHUNK))  # fmt: skip
        # the command has no filter answers: it judges every frame as passing, as the SDK does without them
        unfiltered = [line.split()[0] for line in out.splitlines()]
        assert unfiltered == c.score_for_campaign(project, "fog-cones", ids, x, chunk_size=CHUNK).kept != local.kept
        assert f"of {len(ids)} frames would be kept" in err and "the campaign is filling" in err
        rows = [json.loads(line) for line in shoal("score", "fog-cones", "--embeddings", str(tmp_path / "x.npy"),
                                                   "--frame-ids", str(tmp_path / "ids.txt"), "--chunk-size", str(CHUNK), "--json")[0].splitlines()]  # fmt: skip
        assert [r["frame_id"] for r in rows if r["reason"] == "kept"] == unfiltered

        before = c.standing_campaign(project, "fog-cones").frame_ids
        upload_batch(c, project, second)
        got = c.wait_for_standing_campaign(project, "fog-cones", judged=len(first["ids"]) + len(second["ids"]))
        after, kept = got.campaign, got.frame_ids
        assert kept[len(before) :] == local.kept  # the local choice stops where the budget is spent, as the server
        assert local.judged < len(ids) if after.kept == 45 else local.judged == len(ids)

        out, _ = shoal("show", "fog-cones")
        lines = out.splitlines()
        assert f"{after.kept} of 45 kept" in lines[0]
        assert [line.split()[1] for line in lines[1:]] == kept and "to train/t00" in lines[1]
        shown = [json.loads(line) for line in shoal("show", "fog-cones", "--json")[0].splitlines()]
        assert shown[0]["name"] == "fog-cones" and [r["ref"]["frame_id"] for r in shown[1:]] == kept
        assert shoal("list")[0].split()[:2] == ["fog-cones", "full" if after.kept == 45 else "filling"]
        out, _ = shoal("stop", "fog-cones")
        assert out.split()[1] == ("full" if after.kept == 45 else "stopped")
        assert json.loads(shoal("list", "--json")[0])["name"] == "fog-cones"
