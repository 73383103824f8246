"""`shoal job run`: one queued job of a service run in a process of its own, as a Kubernetes Job's Pod
runs it, on stores that no server holds (the embedded ones here, prepared and read by other processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PREPARE = """
import json, sys
from pathlib import Path
from shoal.common import jobs
from shoal.common.settings import ShoalSettings
from shoal.common.stores import metrics_store
metrics = metrics_store(ShoalSettings(data_dir=Path(sys.argv[1])))
metrics.migrate(jobs.MIGRATIONS)
store = jobs.JobStore(metrics, service="analysis")
job, _ = store.submit("nowhere", "label_issues", {"dataset": "d", "inference_set": "m", "embedding_space": ""})
print(json.dumps({"job_id": job.job_id}))
"""
READ = """
import json, sys
from pathlib import Path
from shoal.common import jobs
from shoal.common.settings import ShoalSettings
from shoal.common.stores import metrics_store
job = jobs.JobStore(metrics_store(ShoalSettings(data_dir=Path(sys.argv[1]))), service="analysis").get("nowhere", sys.argv[2])
print(json.dumps({"state": job.state, "message": job.message}))
"""


def _python(code: str, *args: str) -> dict:  # type: ignore[type-arg]
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _job_run(data_dir: Path, job_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shoal.cli", "job", "run", "--service", "analysis", "--project", "nowhere",
         "--job-id", job_id, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_a_job_run_as_a_process_records_its_end_and_its_exit_code_says_how(tmp_path: Path) -> None:
    data = tmp_path / "data"
    job_id = _python(PREPARE, str(data))["job_id"]
    # the project does not exist: the job fails, says why, and the process exits 1
    failed = _job_run(data, job_id)
    assert failed.returncode == 1, failed.stderr
    assert f"job {job_id} (label_issues) ended FAILED" in failed.stderr
    recorded = _python(READ, str(data), job_id)
    assert recorded["state"] == "FAILED" and "nowhere" in recorded["message"], recorded
    # a finished job is nobody's to run: nothing happens, exit 0
    again = _job_run(data, job_id)
    assert again.returncode == 0 and "nothing to run here" in again.stderr, again.stderr
    # an unknown job is named
    unknown = _job_run(data, "label_issues-nope")
    assert unknown.returncode == 1 and "label_issues-nope" in unknown.stderr, unknown.stderr


def test_a_shard_of_a_job_that_is_not_split_is_refused_by_name(tmp_path: Path) -> None:
    data = tmp_path / "data"
    job_id = _python(PREPARE, str(data))["job_id"]
    base = [sys.executable, "-m", "shoal.cli", "job", "run", "--service", "analysis", "--project", "nowhere",
            "--job-id", job_id, "--data-dir", str(data), "--shards", "2"]  # fmt: skip
    unsplit = subprocess.run([*base, "--shard", "0"], capture_output=True, text=True, timeout=600)
    assert unsplit.returncode == 1 and "label_issues jobs are not split into shards" in unsplit.stderr, unsplit.stderr
    # without --shard, the index is the Indexed Job's: a process outside one is told so
    env = {k: v for k, v in os.environ.items() if k != "JOB_COMPLETION_INDEX"}
    nowhere = subprocess.run(base, capture_output=True, text=True, timeout=600, env=env)
    assert nowhere.returncode != 0 and "JOB_COMPLETION_INDEX" in nowhere.stderr, nowhere.stderr
    assert _python(READ, str(data), job_id)["state"] == "PENDING"  # neither touched the job
