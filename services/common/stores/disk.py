"""Storage failures named for what they are: a full disk or read-only storage.

A store that cannot write because its disk is full answers RESOURCE_EXHAUSTED, one whose storage
turned read-only answers UNAVAILABLE, both with a message that names the store and where its
files are, instead of INTERNAL. The stores recognise the failures by errno and by the words
chDB, ClickHouse and Milvus put in their messages (``Cannot reserve 1.00 MiB, not enough space.
(NOT_ENOUGH_SPACE)``, ``[Errno 28] No space left on device``, ``filesystem error: in
create_directories: Read-only file system``).

Health asks :func:`check_writable` of the directories of the embedded stores: a service whose
store cannot take writes is NOT_SERVING, whether or not a write has failed yet.
"""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path
from typing import Literal

from shoal.common.errors import ResourceExhausted, ShoalError, Unavailable

Failure = Literal["full", "read-only"]

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_FULL_WORDS = (
    "no space left on device",
    "not enough space",  # ClickHouse: Cannot reserve N MiB, not enough space. (NOT_ENOUGH_SPACE)
    "not_enough_space",
    "errno 28]",
    "errno: 28,",
    "disk quota exceeded",  # EDQUOT, and the Milvus server's disk quota
)
_READ_ONLY_WORDS = ("read-only file system", "errno 30]", "errno: 30,")


def classify(exc: BaseException) -> Failure | None:
    """``"full"`` or ``"read-only"`` when ``exc`` (or an error it was raised from) says the disk
    is full or the storage read-only; None for any other failure."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            if current.errno in _FULL_ERRNOS:
                return "full"
            if current.errno == errno.EROFS:
                return "read-only"
        text = str(current).lower()
        if any(w in text for w in _FULL_WORDS):
            return "full"
        if any(w in text for w in _READ_ONLY_WORDS):
            return "read-only"
        current = current.__cause__ or current.__context__
    return None


def full_disk(store: str, where: str) -> ResourceExhausted:
    return ResourceExhausted(
        f"disk full: the {store} store ({where}) has no space left; free space or grow the volume, then retry"
    )


def read_only(store: str, where: str) -> Unavailable:
    return Unavailable(
        f"storage is read-only: the {store} store ({where}) cannot write; make the volume writable again "
        "(a filesystem remounts itself read-only after disk errors), then retry"
    )


def storage_error(exc: BaseException, store: str, where: str) -> ShoalError | None:
    """The typed error for a full disk or read-only storage behind ``exc``; None otherwise.
    ``store`` is the role (metrics, vectors, events), ``where`` names its files or server."""
    failure = classify(exc)
    if failure == "full":
        return full_disk(store, where)
    if failure == "read-only":
        return read_only(store, where)
    return None


def check_writable(path: Path, *, store: str, min_free_bytes: int) -> None:
    """Raises :class:`ResourceExhausted` when the filesystem of ``path`` (a store's file or
    directory) has less than ``min_free_bytes`` free, :class:`Unavailable` when it is read-only or
    a file cannot be created in it. Costs a ``statvfs`` and creating and removing an empty file."""
    directory = path if path.is_dir() else path.parent
    where = str(path)
    try:
        st = os.statvfs(directory)
    except OSError as exc:
        raise Unavailable(f"the {store} store's directory {directory} cannot be read: {exc}") from exc
    if st.f_flag & os.ST_RDONLY:
        raise read_only(store, where)
    free = st.f_bavail * st.f_frsize
    if free < min_free_bytes:
        raise ResourceExhausted(
            f"disk full: the {store} store ({where}) has less than {min_free_bytes // 2**20} MiB free "
            "(SHOAL_MIN_FREE_DISK_MB); free space or grow the volume"
        )
    probe = directory / f".shoal-write-check-{uuid.uuid4().hex}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        error = storage_error(exc, store, where)
        if error is not None:
            raise error from exc
        raise Unavailable(f"the {store} store cannot create a file in {directory}: {exc}") from exc
