"""Job claims as coordination.k8s.io Leases (shoal.common.kubernetes_leases), on a real API server: of
runners claiming the same submission at once exactly one wins, a settled submission is never claimed
again, a holder that stops renewing is taken over, and two job runners racing for the same stale jobs
run each once."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from shoal.common import jobs
from shoal.common.jobs import JobKind, JobRunner, JobStore, revision
from shoal.common.kubernetes_leases import LeaseClaims
from tests.server.conftest import wait_for
from tests.stores.test_job_runner import race_for_stale_jobs

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("kubernetes")]


def _race(claims: list[LeaseClaims], job: jobs.Job) -> list[bool]:
    won = [False] * len(claims)
    start = threading.Barrier(len(claims))

    def claim(i: int) -> None:
        start.wait(30)
        won[i] = claims[i].claim(job, f"runner-{i}")

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(claims))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return won


def test_of_runners_claiming_one_submission_at_once_exactly_one_wins_and_holds_it(
    kubernetes_api: Any, job_store: JobStore
) -> None:
    claims = [LeaseClaims(kubernetes_api, "default", "analysis", duration_seconds=300) for _ in range(8)]
    job, _ = job_store.submit("p", "count", {"n": "lease-race"})
    won = _race(claims, job)
    assert won.count(True) == 1, won
    winner = won.index(True)
    assert claims[0].holder(job) == (f"runner-{winner}", revision(job))
    assert claims[winner].claim(job, f"runner-{winner}")  # its own claim again: still its
    loser = (winner + 1) % len(claims)
    assert not claims[loser].claim(job, f"runner-{loser}")
    # the winner writes the job (a new revision) and settles it: the Lease has no holder, and a runner that
    # read the job before (the old revision) cannot claim it again
    running = job_store.update(job, state=jobs.RUNNING)
    claims[winner].renew([running], f"runner-{winner}")
    claims[winner].release(running, f"runner-{winner}")
    assert claims[0].holder(job) == ("", revision(job))
    assert not claims[loser].claim(job, f"runner-{loser}")
    # a later submission of the job (queued again) is anyone's, once
    again = job_store.update(running, state=jobs.PENDING)
    won = _race(claims, again)
    assert won.count(True) == 1, won


def test_a_holder_that_stops_renewing_is_taken_over_and_one_that_renews_is_not(
    kubernetes_api: Any, job_store: JobStore
) -> None:
    a = LeaseClaims(kubernetes_api, "default", "analysis", duration_seconds=2)
    b = LeaseClaims(kubernetes_api, "default", "analysis", duration_seconds=2)
    job, _ = job_store.submit("p", "count", {"n": "lease-expiry"})
    assert a.claim(job, "a")
    renewing = threading.Event()
    renewals: list[int] = []

    def renew() -> None:
        while not renewing.wait(0.3):
            a.renew([job], "a")
            renewals.append(1)

    renewer = threading.Thread(target=renew)
    renewer.start()
    try:
        # while a renews, b never wins; watched across several lease durations of renewals
        wait_for(lambda: not b.claim(job, "b") and len(renewals) >= 20, timeout=120,
                 what="twenty renewals by the holder", progress=lambda: len(renewals))  # fmt: skip
        assert a.holder(job) == ("a", revision(job))
    finally:
        renewing.set()
        renewer.join(30)
    # a stopped renewing (its runner died): b takes the same submission over once the Lease expires
    wait_for(lambda: b.claim(job, "b"), timeout=120, what="b to take the expired Lease over")
    assert a.holder(job) == ("b", revision(job))
    assert not a.claim(job, "a")


def test_two_runners_racing_for_the_same_stale_jobs_through_leases_run_each_once(
    kubernetes_api: Any, job_store: JobStore
) -> None:
    def runner(kinds: dict[str, JobKind]) -> JobRunner:
        claims = LeaseClaims(kubernetes_api, "default", "analysis", duration_seconds=60)
        return JobRunner(job_store, kinds, heartbeat_seconds=0.2, stale_seconds=60, claims=claims)

    queued, runs = race_for_stale_jobs(job_store, "lease-stale", runner, count=8)
    assert sorted(runs) == sorted(j.job_id for j in queued), f"a job ran twice or never: {runs}"
    # each settled job's Lease is let go
    probe = LeaseClaims(kubernetes_api, "default", "analysis", duration_seconds=60)
    for job in queued:
        holder = probe.holder(job)
        assert holder is not None and holder[0] == "", holder


def test_a_runner_that_stops_hands_its_jobs_over_at_once(kubernetes_api: Any, job_store: JobStore) -> None:
    """A graceful stop (a rolling update) leaves the job's Kubernetes Job running: the next runner takes the
    same submission over without waiting for the Lease to expire, and the one that stopped cannot take it back."""
    a = LeaseClaims(kubernetes_api, "default", "analysis", duration_seconds=3600)
    b = LeaseClaims(kubernetes_api, "default", "analysis", duration_seconds=3600)
    job, _ = job_store.submit("p", "count", {"n": "lease-hand-over"})
    assert a.claim(job, "a") and not b.claim(job, "b")
    a.hand_over(job, "a")
    assert b.claim(job, "b") and a.holder(job) == ("b", revision(job))
    assert not a.claim(job, "a")
    a.hand_over(job, "a")  # not its any more: nothing changes
    assert a.holder(job) == ("b", revision(job)) and not a.claim(job, "a")
