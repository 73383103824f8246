"""`shoal serve` as a real process: reflection, SIGTERM behaviour, one service as a pod."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shoal.client import Client, list_services
from shoal.common.auth import generate_key
from shoal.ingest.v1 import ingest_pb2 as pb
from tests.harness._wait import process_exit, scaled
from tests.server.conftest import wait_for

pytestmark = pytest.mark.integration

ALL = {
    "shoal.ingest.v1.IngestService",
    "shoal.analysis.v1.AnalysisService",
    "shoal.sampler.v1.SamplerService",
    "shoal.labeling_bridge.v1.LabelingBridgeService",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    return subprocess.Popen(
        [sys.executable, "-m", "shoal.cli", *args],
        env={**clean, "SHOAL_CONSOLE_PORT": "0", **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _serving(target: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    with Client(target) as c:
        wait_for(lambda: c.health_status(timeout=2) == "SERVING", timeout=timeout, what=f"shoal serve on {target} to be SERVING",
                 dead=process_exit(proc, "shoal serve", log))  # fmt: skip


def test_sigterm_turns_health_not_serving_before_the_port_closes(tmp_path: Path) -> None:
    port = _free_port()
    target = f"127.0.0.1:{port}"
    grace, drain = 3.0, 1.5
    log = tmp_path / "serve.log"
    proc = _spawn(
        ["serve", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        {"SHOAL_GRACE_SECONDS": str(grace), "SHOAL_DRAIN_SECONDS": str(drain)},
        log,
    )
    try:
        _serving(target, proc, log)
        with Client(target) as c:
            assert ALL | {"grpc.health.v1.Health"} <= set(list_services(c.channel))

        # Watch health as a load balancer would, on a stream opened before SIGTERM.
        seen: list[tuple[float, int]] = []
        channel = grpc.insecure_channel(target)
        stream = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))

        def watch() -> None:
            try:
                for resp in stream:
                    seen.append((time.monotonic(), resp.status))
            except grpc.RpcError:
                pass

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        wait_for(
            lambda: bool(seen) and seen[-1][1] == health_pb2.HealthCheckResponse.SERVING, what="SERVING on the watch"
        )

        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: seen[-1][1] == health_pb2.HealthCheckResponse.NOT_SERVING, timeout=10, what="NOT_SERVING")
        t_not_serving = seen[-1][0]
        # The port still answers, and says NOT_SERVING: load balancers can take the pod out.
        with Client(target) as c:
            assert c.health_status(timeout=2) == "NOT_SERVING"
        # it exits by itself after the drain and the grace (a loaded machine may slow the exit, never stop it)
        code = proc.wait(timeout=scaled(drain + grace + 10))
        assert code == 0
        assert t0 <= t_not_serving, "NOT_SERVING came with SIGTERM, while the port still answered (above)"
        with Client(target) as c:
            assert c.health_status(timeout=1) == "UNAVAILABLE"
        channel.close()
        text = log.read_text()
        assert text.index("health is NOT_SERVING") < text.index("stopping the gRPC server") < text.index("stopped")
    finally:
        if proc.poll() is None:
            proc.kill()


def test_one_service_runs_against_external_servers_as_a_pod_would(
    tmp_path: Path,
    kafka_broker,
    milvus_server: str,
    chdb_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    port = _free_port()
    target = f"127.0.0.1:{port}"
    _, key = generate_key()
    log = tmp_path / "ingest.log"
    proc = _spawn(
        ["serve", "--service", "ingest", "--port", str(port)],
        {
            # chDB stands in for a ClickHouse server (none can be installed here): same engine and
            # client; it is a separate data directory, not the embedded default.
            "SHOAL_METRICS_URL": f"chdb://{tmp_path / 'clickhouse'}",
            "SHOAL_VECTORS_URL": milvus_server,
            "SHOAL_KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
            "SHOAL_TOPIC_PREFIX": "pod-test",
            "SHOAL_TOPIC_PARTITIONS": "2",
            "SHOAL_ADMIN_API_KEY": key,
            "SHOAL_DRAIN_SECONDS": "0",
            "SHOAL_GRACE_SECONDS": "2",
        },
        log,
    )
    try:
        _serving(target, proc, log)
        with Client(target, api_key=key) as c:
            services = set(list_services(c.channel))
            assert "shoal.ingest.v1.IngestService" in services
            assert not (ALL - {"shoal.ingest.v1.IngestService"}) & services
            c.ingest.CreateProject(
                pb.CreateProjectRequest(project=pb.Project(name="pod", task_type=pb.TASK_TYPE_CLASSIFICATION))
            )
            assert c.ingest.GetProject(pb.GetProjectRequest(project="pod")).project.name == "pod"
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap_servers)
        assert {"pod-test.uploads.v1", "pod-test.uploads.dlq.v1", "pod-test.ingested.v1"} <= set(admin.list_topics())
        admin.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_make_demo_job_reports_every_service_serving(tmp_path: Path) -> None:
    """The demo end to end: every service serving, the digits and the planted outliers uploaded,
    label issues scored against the injected flips, outliers against the planted images, and a
    self-contained report with the galleries and the embedding map."""
    import json

    out = tmp_path / "demo-out"
    result = subprocess.run(
        [sys.executable, "-m", "shoal.cli", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=scaled(300),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["services"] == {name: "SERVING" for name in ("ingest", "analysis", "sampler", "labeling_bridge")}
    ingest = summary["ingest"]
    # 1,797 labeled digits with predictions, and 40 planted images without either
    assert {k: ingest[k] for k in ("frames", "labels", "inferences", "embeddings", "pixel_embeddings")} == {
        "frames": 1837, "labels": 1797, "inferences": 1797, "embeddings": 1837, "pixel_embeddings": 1837
    }  # fmt: skip
    truth = json.loads((out / "truth.json").read_text())
    planted = json.loads((out / "outliers.json").read_text())
    assert len(truth) == 1797 and len(planted) == ingest["planted_outliers"] == 40 and not set(planted) & set(truth)
    assert sum(t["flipped"] for t in truth.values()) == ingest["flipped_labels"] == 180
    assert all(t["given"] != t["true"] for t in truth.values() if t["flipped"])
    # the model's metrics against the given labels, as the analysis service computed them
    m = summary["metrics"]
    cm = m["confusion_matrix"]
    assert len(m["classes"]) == 10 and sum(map(sum, cm)) == m["frames"] == 1797
    assert m["accuracy"] == round(sum(cm[i][i] for i in range(10)) / 1797, 4)
    given = [t["given"] for t in truth.values()]
    assert sorted(c["support"] for c in m["per_class"].values()) == sorted(given.count(c) for c in set(given))
    assert 0.7 < m["accuracy"] < 0.95 and len(m["worst_classes"]) == 3
    # label issues found by the analysis job, scored against the injected flips
    li = summary["label_issues"]
    assert li["injected"] == 180 and li["found"] > 0 and 0 <= li["correct"] <= li["found"]
    assert li["precision"] == round(li["correct"] / li["found"], 4) and li["recall"] == round(li["correct"] / 180, 4)
    assert li["precision"] > 0.5 and li["recall"] > 0.5
    # the neighbour job's outlier score ranks the planted images above the digits
    ol = summary["outliers"]
    assert ol["planted"] == 40 and ol["genuine"] == 1797 and ol["frames"] == 1837
    assert ol["auroc"] >= 0.98 and ol["top_k_precision"] >= 0.8
    assert ol["job_id"].startswith("neighbors-") and ol["embedding_space"] == "pixels"
    assert summary["map"]["frames"] == 1837
    assert "failure clusters: " in result.stdout
    fc = summary["failure_clusters"]  # the errors counted are the model's errors over the labeled digits
    assert fc["job_id"].startswith("failure_clusters-") and fc["errors"] == 1797 - sum(cm[i][i] for i in range(10))
    assert fc["clustered_errors"] == sum(c["errors"] for c in fc["clusters"])
    assert all(c["segment"].startswith("failures-") and c["segment_size"] == c["errors"] for c in fc["clusters"])
    assert "outliers: AUROC" in result.stdout and f"precision {li['precision']:.3f}" in result.stdout
    # the campaign: seeds from the commonest confusion, frames chosen from the held-out pool and
    # scored against the pool's hidden truth, well above a random sample of the same budget
    cp = summary["campaign"]
    pool_truth = json.loads((out / "pool_truth.json").read_text())
    assert ingest["pool"]["frames"] == ingest["pool"]["pixel_embeddings"] == len(pool_truth) == 1080
    assert not set(pool_truth) & set(truth) and {t["source"] for t in pool_truth.values()} <= set(truth)
    a, b = (int(x) for x in cp["pattern"].split(" predicted as "))
    assert cp["seeds"] > 0 and cp["budget"] == cp["selected"] == 30
    assert cp["pattern_frames_in_pool"] == sum(t["true"] == a and t["predicted"] == b for t in pool_truth.values())
    assert cp["random_precision"] == round(cp["pattern_frames_in_pool"] / 1080, 4)
    assert cp["precision"] == round(cp["in_pattern"] / 30, 4) and cp["precision"] >= 3 * cp["random_precision"]
    assert cp["class_precision"] >= 0.5 > cp["class_random_precision"]
    assert f"campaign for '{cp['pattern']}'" in result.stdout
    # the standing campaign: the same seeds watch a second pool as frames stream in, upload by upload;
    # it fills before the stream ends, the client's own choice before each upload and the offline rule
    # keep exactly what the server kept, and the dropped frames' vectors are deleted
    sc = summary["standing_campaign"]
    stream_truth = json.loads((out / "stream_truth.json").read_text())
    assert (sc["pattern"], sc["seed_segment"], sc["seeds"]) == (cp["pattern"], cp["seed_segment"], cp["seeds"])
    assert sc["state"] == "FULL" and sc["kept"] == sc["budget"] == 50
    assert sc["frames_streamed"] == len(stream_truth) == 2160 and not set(stream_truth) & set(pool_truth)
    assert sc["full_after_upload"] < sc["uploads_streamed"] and sc["judged"] < 2160
    assert sc["judged"] == sc["kept"] + sc["filtered"] + sc["below_threshold"] + sc["near_kept"]
    assert sc["near_kept"] > 0 and sc["vectors_deleted"] == sc["judged"] - sc["kept"]
    assert sc["client_side_equal"] and sc["client_side_batches"] == sc["full_after_upload"]
    assert sc["client_side_kept"] == sc["offline_twin_kept"] == sc["kept"] and sc["offline_twin_equal"]
    assert sc["pattern_frames_in_stream"] == sum(t["true"] == a and t["predicted"] == b for t in stream_truth.values())
    assert sc["precision"] == round(sc["in_pattern"] / 50, 4) and sc["precision"] >= 5 * sc["random_precision"]
    assert sc["class_precision"] >= 0.4 > sc["class_random_precision"]
    assert f"standing campaign for '{sc['pattern']}'" in result.stdout
    pngs = list((out / "shoal-data" / "media" / "digits").glob("*.png"))
    assert len(pngs) == 1837 and pngs[0].read_bytes().startswith(b"\x89PNG")
    # the 3-D and audio sets: every planted error flagged as its kind and ranked first in it
    cu, se = summary["cuboids_3d"], summary["sound_events"]
    assert cu["state"] == se["state"] == "UPLOAD_STATE_COMPLETED"
    assert cu["frames"] == 40 and cu["labeled_objects"] > 100 and 0.5 < cu["nuscenes"]["map"] <= 1
    assert 0 < cu["nuscenes"]["nds"] <= 1 and 0 < cu["bev_ap"]["map"] <= 1
    for kind, got in cu["label_issues"]["by_kind"].items():
        assert got["planted"] == cu["planted"][kind] > 0 and got["planted_in_first"] == got["planted"], kind
        assert got["found_as_planted"] == got["planted"], kind  # a mislocalized cuboid named centre/size/heading
    assert se["clips"] == 30 and se["labeled_events"] > 30 and 0.5 < se["event_based"]["f1"] <= 1
    for kind, got in se["label_issues"]["by_kind"].items():
        assert got["planted"] == se["planted"][kind] > 0 and got["planted_in_first"] == got["planted"], kind
    clouds = list((out / "shoal-data" / "media").rglob("*.bin"))
    clips = list((out / "shoal-data" / "media").rglob("*.wav"))
    assert len(clouds) == 40 and len(clips) == 30 and clips[0].read_bytes().startswith(b"RIFF")
    # running it again on the same data reuses the project and still adds up
    again = subprocess.run(
        [sys.executable, "-m", "shoal.cli", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=scaled(300),
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["ingest"]["frames"] == 1837
    report = (out / "report.html").read_text()
    assert "shoal.ingest.v1.IngestService" in report and "SERVING" in report
    assert "Model performance" in report and "class='heat'" in report
    assert "Label issues" in report and report.count("src='data:image/png;base64,") >= 10
    assert "<h2>Failure clusters</h2>" in report and f"The model's {fc['errors']} errors" in report
    assert "<h2>3-D cuboids</h2>" in report and "<h2>Sound events</h2>" in report
    campaign = _between(report, "id='campaign-gallery'", "</div>")
    assert campaign.count("src='data:image/png;base64,") == 30 and campaign.count("in the pattern") == 30
    standing = _between(report, "id='standing-gallery'", "</div>")
    assert standing.count("src='data:image/png;base64,") == 50 and standing.count("in the pattern") == 50
    assert "<h2>Standing campaign</h2>" in report and "the frames the server then kept, in the same order" in report
    # self-contained: nothing fetched from elsewhere
    assert "http://" not in report.replace("http://www.w3.org/2000/svg", "") and "https://" not in report
    # the outlier gallery: the top frames with their images, planted ones marked as such
    gallery = _between(report, "id='outlier-gallery'", "</div>")
    assert gallery.count("src='data:image/png;base64,") >= 20 and gallery.count("planted: ") >= 20
    # the embedding map twice, every frame a point: by class (digits in their class colour, the
    # planted images unlabeled) and by issue (the planted ones and the label issues marked)
    by_class = _between(report, "id='map-by-class'", "</svg>")
    by_issue = _between(report, "id='map-by-issue'", "</svg>")
    assert by_class.count("<circle") == by_issue.count("<circle") == 1837
    assert by_class.count(": no label</title>") == 40 and by_class.count(": label 3</title>") > 100
    assert by_issue.count(": planted outlier</title>") == 40 and by_issue.count(": label issue</title>") == li["found"]


def _between(text: str, start: str, end: str) -> str:
    """The text from ``start`` to the next ``end``."""
    i = text.index(start)
    return text[i : text.index(end, i)]
