"""Who runs a job, as ``coordination.k8s.io`` Leases: the claims of the services' job runners when
their jobs run as Kubernetes Jobs (``SHOAL_JOB_EXECUTOR=kubernetes``).

One Lease per job, named after it. A runner claims a submission of the job (its :func:`revision`)
by writing its name as the Lease's holder and the revision in an annotation; the API server accepts
only one of two writes made from the same read (``resourceVersion``), so of every runner that
claims at once exactly one wins. The winner renews the Lease while it holds the job (its heartbeat)
and lets it go (no holder) when the job is settled. A Lease whose holder stopped renewing it for
``leaseDurationSeconds`` may be taken by another runner, for the same submission too: a runner
that died between its claim and its first write of the job does not leave the job stuck."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from shoal.common.jobs import Job, revision

log = logging.getLogger(__name__)

REVISION_ANNOTATION = "shoal.dev/revision"
#: a release lost to a concurrent write (the holder's own renewal) is tried this many times in all
RELEASE_ATTEMPTS = 5
LEASE_LABELS = {"app.kubernetes.io/name": "shoal", "app.kubernetes.io/managed-by": "shoal-job-executor"}


def _later(a: str, b: str) -> bool:
    """Whether the submission of revision ``a`` was written after that of ``b`` (by their update times)."""
    try:
        return datetime.fromisoformat(a.split("@", 1)[1]) > datetime.fromisoformat(b.split("@", 1)[1])
    except (IndexError, ValueError):
        return not b  # a Lease that names no readable revision is taken


def _micro(t: datetime) -> str:
    """A Kubernetes MicroTime."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseClaims:
    """Job claims of one service's runners as Leases in one namespace."""

    def __init__(self, api: Any, namespace: str, service: str, duration_seconds: float) -> None:
        from kubernetes import client

        self.coordination = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.service = service
        self.duration = max(1, round(duration_seconds))

    def name(self, job: Job) -> str:
        digest = hashlib.sha256(f"{job.project}\0{job.job_id}".encode()).hexdigest()[:32]
        return f"shoal-{self.service.replace('_', '-')}-job-{digest}"

    def claim(self, job: Job, runner: str) -> bool:
        """Whether ``runner`` won ``job`` as it was read (its revision): of every runner that claims a
        submission, one wins, and a submission once settled is never claimed again. The Lease is
        created if there is none and taken when it names an earlier submission that no live runner
        holds, or when its holder stopped renewing it while holding this one."""
        from kubernetes.client.exceptions import ApiException

        name, wanted = self.name(job), revision(job)
        now = datetime.now(UTC)
        try:
            self.coordination.create_namespaced_lease(self.namespace, self._body(job, name, runner, now, 0))
            return True
        except ApiException as exc:
            if exc.status != 409:  # 409: the job has a Lease already
                raise
        lease = self.coordination.read_namespaced_lease(name, self.namespace)
        holder = lease.spec.holder_identity or ""
        held_for = (lease.metadata.annotations or {}).get(REVISION_ANNOTATION, "")
        alive = bool(holder) and not self._expired(lease, now)
        if held_for == wanted:
            if holder == runner:
                return True
            if alive or not holder:  # another runner's, alive; or settled already
                return False
            # its holder died holding it: taken over below
        elif not _later(wanted, held_for):  # read before the submission the Lease names: stale
            return False
        elif alive and holder != runner:  # another runner holds the job, alive
            return False
        body = self._body(job, name, runner, now, (lease.spec.lease_transitions or 0) + (holder != runner))
        body["metadata"]["resourceVersion"] = lease.metadata.resource_version
        try:
            self.coordination.replace_namespaced_lease(name, self.namespace, body)
        except ApiException as exc:
            if exc.status == 409:  # another runner wrote it since this read: theirs
                return False
            raise
        if holder and holder != runner:
            log.info("took job %s of project %r over from %s (its Lease expired)", job.job_id, job.project, holder)
        return True

    def renew(self, jobs: Iterable[Job], runner: str) -> None:
        """Renews the Leases ``runner`` holds of ``jobs`` (its heartbeat); one lost meanwhile is logged."""
        from kubernetes.client.exceptions import ApiException

        now = _micro(datetime.now(UTC))
        for job in jobs:
            name = self.name(job)
            try:
                lease = self.coordination.read_namespaced_lease(name, self.namespace)
                if lease.spec.holder_identity != runner:
                    if not lease.spec.holder_identity:  # let go meanwhile: the job was just settled
                        continue
                    log.warning("job %s of project %r: its Lease is held by %s now", job.job_id, job.project,
                                lease.spec.holder_identity)  # fmt: skip
                    continue
                lease.spec.renew_time = now
                self.coordination.replace_namespaced_lease(name, self.namespace, lease)
            except ApiException as exc:
                if exc.status not in (404, 409):
                    raise

    def hand_over(self, job: Job, runner: str) -> None:
        """Marks the job's Lease expired if ``runner`` holds it (the runner stops while the job goes on):
        the next runner takes it over at once, for this submission too."""
        from kubernetes.client.exceptions import ApiException

        try:
            lease = self.coordination.read_namespaced_lease(self.name(job), self.namespace)
            if lease.spec.holder_identity != runner:
                return
            # long expired (a MicroTime needs its fraction: the client writes a datetime without one when it is 0)
            lease.spec.renew_time = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
            self.coordination.replace_namespaced_lease(self.name(job), self.namespace, lease)
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone, or written meanwhile: it expires by itself
                raise

    def release(self, job: Job, runner: str) -> None:
        """Lets the job's Lease go if ``runner`` holds it (the job is settled): no holder, and the
        revision it names stays, so that a runner that read the job before cannot claim it again. A
        write lost to a renewal of the same runner's (its heartbeat) is tried again."""
        from kubernetes.client.exceptions import ApiException

        name = self.name(job)
        for _ in range(RELEASE_ATTEMPTS):
            try:
                lease = self.coordination.read_namespaced_lease(name, self.namespace)
                if lease.spec.holder_identity != runner:
                    return  # taken over meanwhile: not ours to let go
                lease.spec.holder_identity = None
                self.coordination.replace_namespaced_lease(name, self.namespace, lease)
                return
            except ApiException as exc:
                if exc.status == 404:
                    return
                if exc.status != 409:
                    raise
        log.warning("could not let go of the Lease of job %s of project %r; it expires by itself", job.job_id,
                    job.project)  # fmt: skip

    def holder(self, job: Job) -> tuple[str, str] | None:
        """(holder, revision) of the job's Lease, or None without one."""
        from kubernetes.client.exceptions import ApiException

        try:
            lease = self.coordination.read_namespaced_lease(self.name(job), self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return lease.spec.holder_identity or "", (lease.metadata.annotations or {}).get(REVISION_ANNOTATION, "")

    def _expired(self, lease: Any, now: datetime) -> bool:
        renewed = lease.spec.renew_time or lease.spec.acquire_time
        if renewed is None:
            return True
        if renewed.tzinfo is None:
            renewed = renewed.replace(tzinfo=UTC)
        return now - renewed > timedelta(seconds=lease.spec.lease_duration_seconds or self.duration)

    def _body(self, job: Job, name: str, runner: str, now: datetime, transitions: int) -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {**LEASE_LABELS, "shoal.dev/service": self.service},
                "annotations": {
                    REVISION_ANNOTATION: revision(job),
                    "shoal.dev/project": job.project,
                    "shoal.dev/job": job.job_id,
                },
            },
            "spec": {
                "holderIdentity": runner,
                "leaseDurationSeconds": self.duration,
                "acquireTime": _micro(now),
                "renewTime": _micro(now),
                "leaseTransitions": transitions,
            },
        }
