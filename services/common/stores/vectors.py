"""The vector store: Milvus, embedded as a Milvus Lite file or a Milvus server over gRPC.

Vocabulary: a *collection* holds the vectors of one (project, embedding space); a *partition*
holds one dataset's vectors inside it, so a dataset can be searched, counted or dropped alone.
Primary keys are strings chosen by the caller (derived from dataset, frame and object), so a
redelivered upsert overwrites in place.

Every call passes ``timeout=``. Filters are built from typed conditions by :func:`expr_eq` and
friends, which check field names and escape values: Milvus Lite does not bind filter
parameters, so the escaping here is what keeps a value from becoming an expression.
"""

from __future__ import annotations

import abc
import hashlib
import logging
import math
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import grpc
import numpy as np
from pymilvus import DataType, MilvusClient, MilvusException

from shoal.common import telemetry
from shoal.common.errors import (
    ConfigurationError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ShoalError,
    Unavailable,
)
from shoal.common.stores.disk import storage_error

log = logging.getLogger(__name__)

Metric = Literal["COSINE", "L2", "IP"]
ScalarType = Literal["string", "int64", "double", "bool"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
_PK_FIELD = "pk"
_VECTOR_FIELD = "vector"
_PK_MAX = 512
_UPSERT_BYTES = 16 * 1024 * 1024
#: the largest HNSW search list Milvus accepts
HNSW_MAX_EF = 32_768
_STRING_MAX = 1024
_MILVUS_TYPES = {
    "string": DataType.VARCHAR,
    "int64": DataType.INT64,
    "double": DataType.DOUBLE,
    "bool": DataType.BOOL,
}


@dataclass(frozen=True)
class ScalarField:
    name: str
    type: ScalarType


@dataclass(frozen=True)
class CollectionSpec:
    """Shape of a collection: ``dimension``-d float vectors under ``metric``, a string primary
    key, and typed scalar fields usable in filters."""

    name: str
    dimension: int
    metric: Metric = "COSINE"
    scalar_fields: tuple[ScalarField, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        check_identifier(self.name, what="collection name")
        if not 1 <= self.dimension <= 32768:
            raise InvalidArgument(f"must be in [1, 32768], got {self.dimension}", field="dimension")
        if self.metric not in ("COSINE", "L2", "IP"):
            raise InvalidArgument(f"must be COSINE, L2 or IP, got {self.metric!r}", field="metric")
        for f in self.scalar_fields:
            check_identifier(f.name, what="field name")
            if f.name in (_PK_FIELD, _VECTOR_FIELD):
                raise InvalidArgument(f"{f.name!r} is reserved", field="scalar_fields")


@dataclass(frozen=True)
class Hit:
    id: str
    distance: float
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VectorBatch:
    ids: list[str]
    vectors: np.ndarray  # (N, D) float32; (N, 0) when vectors were not asked for
    fields: dict[str, list[Any]]


# --- names and filters -------------------------------------------------------------------
def check_identifier(name: str, *, what: str) -> str:
    if not _IDENT.match(name):
        raise InvalidArgument(f"{what} {name!r} must match {_IDENT.pattern}")
    return name


def collection_name(project: str, space: str) -> str:
    """Collection of (project, embedding space): readable and collision-free."""
    readable = re.sub(r"[^A-Za-z0-9_]", "_", f"{project}__{space}")[:180]
    digest = hashlib.sha1(f"{project}\x00{space}".encode(), usedforsecurity=False).hexdigest()[:10]
    return f"shoal_{readable}_{digest}"


def partition_name(dataset: str) -> str:
    """Partition of a dataset inside a collection."""
    readable = re.sub(r"[^A-Za-z0-9_]", "_", dataset)[:180]
    digest = hashlib.sha1(dataset.encode(), usedforsecurity=False).hexdigest()[:10]
    return f"p_{readable}_{digest}"


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise InvalidArgument(f"filter value must be finite, got {value}")
        return repr(float(value))
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidArgument("filter value must not contain NUL")
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
        return f'"{escaped}"'
    raise InvalidArgument(f"unsupported filter value type {type(value).__name__}")


def expr_eq(field_name: str, value: Any) -> str:
    """``field == value`` with the name checked and the value escaped."""
    return f"{check_identifier(field_name, what='field name')} == {_literal(value)}"


def expr_in(field_name: str, values: Sequence[Any]) -> str:
    """``field in [values]``; an empty list matches nothing."""
    check_identifier(field_name, what="field name")
    if not values:
        return f"{field_name} in []"
    return f"{field_name} in [{', '.join(_literal(v) for v in values)}]"


def expr_not_in(field_name: str, values: Sequence[Any]) -> str:
    check_identifier(field_name, what="field name")
    if not values:
        return ""
    return f"{field_name} not in [{', '.join(_literal(v) for v in values)}]"


def expr_and(*exprs: str) -> str:
    parts = [f"({e})" for e in exprs if e]
    return " and ".join(parts)


# --- the store ---------------------------------------------------------------------------
class VectorStore(abc.ABC):
    """Vectors of a Shoal deployment in Milvus."""

    kind: str
    #: where the vectors are, for messages: the Milvus Lite file or the server's address
    where: str
    _count_needs_filter = False

    def __init__(self, *, timeout_seconds: float) -> None:
        self.timeout = timeout_seconds
        self._client_lock = threading.Lock()
        self._milvus: MilvusClient | None = None
        self._known: dict[str, CollectionSpec] = {}
        self._partitions: set[tuple[str, str]] = set()
        #: ``end``: the monotonic time the current thread's :meth:`_call` must finish by
        self._attempt = threading.local()

    @abc.abstractmethod
    def _connect(self) -> MilvusClient: ...

    @abc.abstractmethod
    def _index_params(self, client: MilvusClient, spec: CollectionSpec) -> Any: ...

    def _search_params(self, spec: CollectionSpec, k: int) -> dict[str, Any]:
        return {"metric_type": spec.metric}

    def _client(self) -> MilvusClient:
        with self._client_lock:
            if self._milvus is None:
                try:
                    self._milvus = self._connect()
                except MilvusException as exc:
                    raise Unavailable(f"Milvus unreachable: {exc.message}") from exc
                except Exception as exc:
                    raise Unavailable(f"Milvus unreachable: {type(exc).__name__}: {exc}") from exc
            return self._milvus

    def _timeout(self) -> float:
        """The ``timeout=`` of a Milvus call: what is left of the budget of the :meth:`_call` it
        runs in (never more than store_timeout_seconds, never past the caller's deadline)."""
        end = getattr(self._attempt, "end", None)
        if end is None:
            return self.timeout
        return max(end - time.monotonic(), 0.001)

    def _budget(self, what: str) -> tuple[float, bool]:
        """Seconds a call may take, retries included, and whether the caller's deadline (rather
        than store_timeout_seconds) sets them."""
        request = telemetry.current_request()
        remaining = request.remaining() if request is not None else None
        if remaining is None or remaining >= self.timeout:
            return self.timeout, False
        if remaining <= 0:
            raise DeadlineExceeded(f"the caller's deadline passed before the vector store's {what}")
        return remaining, True

    def _call(self, what: str, fn: Any) -> Any:
        """Runs ``fn(client)``, one Milvus call passing ``timeout=self._timeout()``.

        A failure to reach Milvus is retried, with backoff, within the budget: the caller's
        remaining deadline when an RPC is served, at most store_timeout_seconds. A timeout becomes
        DEADLINE_EXCEEDED naming the operation and the time it had, a full disk
        RESOURCE_EXHAUSTED and read-only storage UNAVAILABLE, naming the store."""
        budget, by_caller = self._budget(what)
        outer = getattr(self._attempt, "end", None)
        end = time.monotonic() + budget
        self._attempt.end = end if outer is None else min(end, outer)
        backoff = 0.05
        try:
            while True:
                try:
                    client = self._client()
                except Unavailable:
                    if self._attempt.end - time.monotonic() < backoff:
                        raise
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                try:
                    return fn(client)
                except ShoalError:
                    raise
                except Exception as exc:
                    error, retriable = self._error(what, exc, budget, by_caller)
                    if error is None:
                        raise
                    left = self._attempt.end - time.monotonic()
                    if not retriable or left < backoff:
                        raise error from exc
                    log.info("vector store %s failed (%s); retrying in %.2fs", what, error, backoff)
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
        finally:
            self._attempt.end = outer

    def _error(self, what: str, exc: Exception, budget: float, by_caller: bool) -> tuple[ShoalError | None, bool]:
        """The typed error for a failed call, and whether trying again may help; (None, False) for
        a failure that is not about reaching or storing (the caller handles it)."""
        storage = storage_error(exc, "vectors", self.where)
        if storage is not None:
            return storage, False
        status = _status(exc)
        message = exc.message if isinstance(exc, MilvusException) else str(exc)
        timed_out = status is None and any(w in message.lower() for w in _TIMEOUT_WORDS)
        if status == grpc.StatusCode.DEADLINE_EXCEEDED or timed_out:
            if by_caller:
                text = f"the caller's deadline passed during the vector store's {what} ({budget:.3g}s were left)"
            else:
                text = f"the vector store's {what} timed out after {budget:.3g}s (SHOAL_STORE_TIMEOUT_SECONDS)"
            return DeadlineExceeded(text), False
        if status == grpc.StatusCode.UNAVAILABLE or (isinstance(exc, MilvusException) and _is_unavailable(exc)):
            return Unavailable(f"Milvus unreachable during {what}: {message}"), True
        if status is None and not isinstance(exc, MilvusException) and "unavailable" in message.lower():
            return Unavailable(f"Milvus unreachable during {what}: {message}"), True
        return None, False

    # -- collections ---------------------------------------------------------------------
    def ensure_collection(self, spec: CollectionSpec) -> None:
        """Creates the collection if missing. An existing one with another dimension or metric
        is refused with FAILED_PRECONDITION: vectors of different shapes never share one."""
        known = self._known.get(spec.name)
        if known is not None:
            self._check_same(spec, known)
            return
        if self.has_collection(spec.name):
            existing = self._describe(spec.name)
            self._check_same(spec, existing)
            self._ensure_loaded(spec.name)
            self._known[spec.name] = existing
            return

        def create(c: MilvusClient) -> None:
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description=spec.description)
            schema.add_field(_PK_FIELD, DataType.VARCHAR, is_primary=True, max_length=_PK_MAX)
            schema.add_field(_VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=spec.dimension)
            for f in spec.scalar_fields:
                kwargs = {"max_length": _STRING_MAX} if f.type == "string" else {}
                schema.add_field(f.name, _MILVUS_TYPES[f.type], **kwargs)
            self._create_collection(c, spec, schema)

        self._call("create_collection", create)
        self._known[spec.name] = spec
        log.info("created vector collection %s (%d-d, %s)", spec.name, spec.dimension, spec.metric)

    def _create_collection(self, client: MilvusClient, spec: CollectionSpec, schema: Any) -> None:
        """Creates, indexes and loads a collection (pymilvus waits for the index to be built)."""
        client.create_collection(
            spec.name,
            schema=schema,
            index_params=self._index_params(client, spec),
            consistency_level="Strong",
            timeout=self._timeout(),
        )

    def _describe(self, name: str) -> CollectionSpec:
        desc = self._call("describe_collection", lambda c: c.describe_collection(name, timeout=self._timeout()))
        dim, fields = 0, []
        rev = {v: k for k, v in _MILVUS_TYPES.items()}
        for f in desc["fields"]:
            if f["name"] == _VECTOR_FIELD:
                dim = int(f["params"]["dim"])
            elif f["name"] != _PK_FIELD:
                fields.append(ScalarField(f["name"], rev.get(f["type"], "string")))
        indexes = self._call("list_indexes", lambda c: c.list_indexes(name, timeout=self._timeout()))
        metric: Metric = "COSINE"
        for idx in indexes:
            info = self._call("describe_index", lambda c, idx=idx: c.describe_index(name, idx, timeout=self._timeout()))
            if info and info.get("metric_type"):
                metric = info["metric_type"]
        return CollectionSpec(name=name, dimension=dim, metric=metric, scalar_fields=tuple(fields))

    @staticmethod
    def _check_same(wanted: CollectionSpec, existing: CollectionSpec) -> None:
        if (wanted.dimension, wanted.metric) != (existing.dimension, existing.metric):
            raise FailedPrecondition(
                f"collection {wanted.name} holds {existing.dimension}-d {existing.metric} vectors, "
                f"not {wanted.dimension}-d {wanted.metric}"
            )

    def has_collection(self, name: str) -> bool:
        return bool(self._call("has_collection", lambda c: c.has_collection(name, timeout=self._timeout())))

    def list_collections(self) -> list[str]:
        return sorted(self._call("list_collections", lambda c: c.list_collections(timeout=self._timeout())))

    def drop_collection(self, name: str) -> None:
        self._call("drop_collection", lambda c: c.drop_collection(name, timeout=self._timeout()))
        self._known.pop(name, None)
        self._partitions = {p for p in self._partitions if p[0] != name}

    def _spec(self, name: str) -> CollectionSpec:
        spec = self._known.get(name)
        if spec is None:
            if not self.has_collection(name):
                raise NotFound(f"vector collection {name} does not exist")
            spec = self._describe(name)
            self._ensure_loaded(name)
            self._known[name] = spec
        return spec

    def _ensure_loaded(self, name: str) -> None:
        """A collection created by an earlier process (or before a Milvus restart) may be
        released; reads need it loaded."""
        try:
            state = self._call("get_load_state", lambda c: c.get_load_state(name, timeout=self._timeout()))
            loaded = "Loaded" in str(state.get("state", "")) and "NotLoad" not in str(state.get("state", ""))
        except MilvusException:
            loaded = False
        if not loaded:
            log.info("loading vector collection %s", name)
            self._call("load_collection", lambda c: c.load_collection(name, timeout=self._timeout()))

    def ensure_partition(self, collection: str, partition: str) -> str:
        """Creates the partition of a dataset if missing; returns its Milvus name."""
        pname = partition_name(partition)
        if (collection, pname) in self._partitions:
            return pname
        if not self._call("has_partition", lambda c: c.has_partition(collection, pname, timeout=self._timeout())):
            self._call("create_partition", lambda c: c.create_partition(collection, pname, timeout=self._timeout()))
            self._load_partition(collection, pname)
        self._partitions.add((collection, pname))
        return pname

    def _load_partition(self, collection: str, pname: str) -> None:
        """Makes a new partition of a loaded collection searchable."""
        # A new partition of a loaded collection must be loaded to be searched.
        self._call("load_partitions", lambda c: c.load_partitions(collection, [pname], timeout=self._timeout()))

    def _release_partition(self, collection: str, pname: str) -> None:
        """Unloads a partition: the server drops only released partitions."""
        self._call("release_partitions", lambda c: c.release_partitions(collection, [pname], timeout=self._timeout()))

    def _has_partition(self, collection: str, pname: str) -> bool:
        if (collection, pname) in self._partitions:
            return True
        found = bool(self._call("has_partition", lambda c: c.has_partition(collection, pname, timeout=self._timeout())))
        if found:
            self._partitions.add((collection, pname))
        return found

    def _existing_partitions(self, collection: str, partitions: Sequence[str]) -> list[str]:
        """Milvus names of the datasets' partitions that exist: a dataset never written has none,
        and is searched, iterated or deleted from as an empty one (Milvus would refuse the name)."""
        out: list[str] = []
        for p in dict.fromkeys(partitions):
            pname = partition_name(p)
            if self._has_partition(collection, pname):
                out.append(pname)
        return out

    def drop_partition(self, collection: str, partition: str) -> None:
        pname = partition_name(partition)
        if self._call("has_partition", lambda c: c.has_partition(collection, pname, timeout=self._timeout())):
            self._release_partition(collection, pname)
            self._call("drop_partition", lambda c: c.drop_partition(collection, pname, timeout=self._timeout()))
        self._partitions.discard((collection, pname))

    # -- data ----------------------------------------------------------------------------
    def upsert(
        self,
        collection: str,
        *,
        partition: str,
        ids: Sequence[str],
        vectors: np.ndarray,
        fields: Mapping[str, Sequence[Any]] | None = None,
    ) -> int:
        """Writes vectors by primary key, replacing any with the same key; returns the count."""
        spec = self._spec(collection)
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow becomes inf, refused below
            vecs = np.asarray(vectors, dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[1] != spec.dimension:
            raise InvalidArgument(f"expected shape (N, {spec.dimension}), got {vecs.shape}", field="vectors")
        if len(ids) != vecs.shape[0]:
            raise InvalidArgument(f"{len(ids)} ids for {vecs.shape[0]} vectors", field="ids")
        if not np.isfinite(vecs).all():
            raise InvalidArgument("vectors must be finite (no NaN or infinity)", field="vectors")
        fields = dict(fields or {})
        declared = {f.name for f in spec.scalar_fields}
        if set(fields) != declared:
            raise InvalidArgument(
                f"collection {collection} needs fields {sorted(declared)}, got {sorted(fields)}", field="fields"
            )
        as_lists = {k: list(v) for k, v in fields.items()}
        for name, values in as_lists.items():
            if len(values) != len(ids):
                raise InvalidArgument(f"{len(values)} values for {len(ids)} ids", field=f"fields.{name}")
        for i, pk in enumerate(ids):
            if not isinstance(pk, str):
                raise InvalidArgument(f"must be a string, got {type(pk).__name__}", field=f"ids[{i}]")
            if len(pk.encode()) > _PK_MAX:
                raise InvalidArgument(f"must be at most {_PK_MAX} bytes in UTF-8", field=f"ids[{i}]")
        for f in spec.scalar_fields:
            for i, value in enumerate(as_lists[f.name]):
                _check_value(f, value, f"fields.{f.name}[{i}]")
        if len(ids) == 0:
            return 0
        pname = self.ensure_partition(collection, partition)
        # One record per key, the last one given winning as in a sequence of upserts: the server
        # (2.3) would otherwise store every duplicate of a batch and return the first.
        last = list({pk: i for i, pk in enumerate(ids)}.items())
        # requests of about _UPSERT_BYTES each: bounded memory and gRPC message size for any batch
        step = max(1, _UPSERT_BYTES // (spec.dimension * 4 + 256))
        for start in range(0, len(last), step):
            part = last[start : start + step]
            vec_lists = vecs[[i for _, i in part]].tolist()
            rows = []
            for (pk, i), vec in zip(part, vec_lists, strict=True):
                row: dict[str, Any] = {_PK_FIELD: pk, _VECTOR_FIELD: vec}
                for name, values in as_lists.items():
                    row[name] = values[i]
                rows.append(row)
            self._call(
                "upsert",
                lambda c, rows=rows: c.upsert(collection, rows, partition_name=pname, timeout=self._timeout()),
            )
        return len(last)

    def delete(self, collection: str, *, ids: Sequence[str], partition: str | None = None) -> None:
        """Deletes the records with these keys (only those of dataset ``partition`` if given)."""
        if not ids:
            return
        kwargs: dict[str, Any] = {}
        if partition is not None:
            if not self._existing_partitions(collection, [partition]):
                return
            kwargs["partition_name"] = partition_name(partition)
            ids = self._scope_to_partition(collection, kwargs["partition_name"], ids)
            if not ids:
                return
        self._call(
            "delete",
            lambda c: c.delete(collection, filter=expr_in(_PK_FIELD, list(ids)), timeout=self._timeout(), **kwargs),
        )

    def _scope_to_partition(self, collection: str, pname: str, ids: Sequence[str]) -> Sequence[str]:
        """The ids to delete from partition ``pname`` (the server honours partition_name)."""
        return ids

    def get(self, collection: str, ids: Sequence[str], *, with_vectors: bool = True) -> VectorBatch:
        """The records with these primary keys that exist, in the order asked."""
        spec = self._spec(collection)
        out = [f.name for f in spec.scalar_fields] + ([_VECTOR_FIELD] if with_vectors else [])
        rows = (
            self._call(
                "get",
                lambda c: c.query(
                    collection,
                    filter=expr_in(_PK_FIELD, list(ids)),
                    output_fields=[_PK_FIELD, *out],
                    timeout=self._timeout(),
                ),
            )
            if ids
            else []
        )
        by_id = {r[_PK_FIELD]: r for r in rows}
        ordered = [by_id[i] for i in ids if i in by_id]
        return _batch(ordered, spec, with_vectors)

    def count(self, collection: str, *, partition: str | None = None) -> int:
        spec = self._spec(collection)
        kwargs: dict[str, Any] = {}
        if partition is not None:
            pname = partition_name(partition)
            if not self._has_partition(collection, pname):
                return 0
            kwargs["partition_names"] = [pname]
        # Milvus Lite ignores partition_names in a count(*) without a filter (it counts the whole
        # collection); a filter every primary key matches makes it honour them.
        flt = f'{_PK_FIELD} >= ""' if partition is not None and self._count_needs_filter else ""
        res = self._call(
            "count",
            lambda c: c.query(spec.name, filter=flt, output_fields=["count(*)"], timeout=self._timeout(), **kwargs),
        )
        return int(res[0]["count(*)"]) if res else 0

    def search(
        self,
        collection: str,
        vectors: np.ndarray,
        *,
        k: int,
        partitions: Sequence[str] | None = None,
        filter: str = "",
        output_fields: Sequence[str] = (),
        fresh: bool = True,
    ) -> list[list[Hit]]:
        """The ``k`` nearest records of each query vector, nearest first. ``distance`` is the
        metric's value as Milvus reports it (for COSINE and IP: a similarity, larger is nearer).

        ``fresh`` sees every write acknowledged before the call (Milvus's strong consistency: a
        server search then waits for its next time tick, about 200 ms). Without it the search sees
        this process's own writes, and other processes' up to a few seconds late, and does not
        wait when this process has not just written (session consistency)."""
        spec = self._spec(collection)
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow becomes inf, refused below
            q = np.asarray(vectors, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != spec.dimension:
            raise InvalidArgument(f"expected shape (Q, {spec.dimension}), got {q.shape}", field="vectors")
        if not np.isfinite(q).all():
            raise InvalidArgument("query vectors must be finite (no NaN or infinity)", field="vectors")
        if not 1 <= k <= 16384:
            raise InvalidArgument(f"must be in [1, 16384], got {k}", field="k")
        kwargs: dict[str, Any] = {}
        if partitions is not None:
            # An empty list selects no dataset (to Milvus it would mean every partition).
            kwargs["partition_names"] = self._existing_partitions(collection, partitions)
            if not kwargs["partition_names"]:
                return [[] for _ in range(q.shape[0])]
        res = self._call(
            "search",
            lambda c: c.search(
                collection,
                data=q.tolist(),
                limit=k,
                filter=filter,
                output_fields=[_PK_FIELD, *output_fields],
                search_params=self._search_params(spec, k),
                timeout=self._timeout(),
                consistency_level="Strong" if fresh else "Session",
                **kwargs,
            ),
        )
        out: list[list[Hit]] = []
        for hits in res:
            row = []
            for h in hits:
                entity = dict(h.get("entity") or {})
                pk = entity.pop(_PK_FIELD, None)
                if pk is None:  # the server reports the key as 'id', Milvus Lite as 'pk'
                    pk = h.get("id") if h.get("id") is not None else h.get(_PK_FIELD)
                entity.pop(_VECTOR_FIELD, None)
                row.append(Hit(id=str(pk), distance=float(h["distance"]), fields=entity))
            out.append(row)
        return out

    def iterate(
        self,
        collection: str,
        *,
        partition: str | None = None,
        batch_size: int = 1000,
        with_vectors: bool = True,
        filter: str = "",
    ) -> Iterator[VectorBatch]:
        """Every record, in batches of at most ``batch_size``, in bounded memory."""
        spec = self._spec(collection)
        out = [_PK_FIELD, *[f.name for f in spec.scalar_fields]] + ([_VECTOR_FIELD] if with_vectors else [])
        kwargs: dict[str, Any] = {}
        if partition is not None:
            kwargs["partition_names"] = self._existing_partitions(collection, [partition])
            if not kwargs["partition_names"]:
                return
        it = self._call(
            "query_iterator",
            lambda c: c.query_iterator(
                collection, batch_size=batch_size, filter=filter, output_fields=out, timeout=self._timeout(), **kwargs
            ),
        )
        try:
            while True:
                rows = self._call("query_iterator.next", lambda _c: it.next())
                if not rows:
                    break
                yield _batch(rows, spec, with_vectors)
        finally:
            it.close()

    def flush(self, collection: str) -> None:
        """Seals what was written: Milvus searches vectors still in growing segments through a coarse
        interim index (lower recall) until they are sealed and indexed."""
        self._call("flush", lambda c: c.flush(collection, timeout=self._timeout()))

    def index_progress(self, collection: str) -> tuple[int, int]:
        """(indexed rows, total rows) of the collection's vector index."""
        info = self._call(
            "describe_index", lambda c: c.describe_index(collection, _VECTOR_FIELD, timeout=self._timeout())
        )
        return int(info.get("indexed_rows", 0)), int(info.get("total_rows", 0))

    def ping(self) -> None:
        """Raises :class:`Unavailable` unless Milvus answers."""
        self.list_collections()

    def close(self) -> None:
        with self._client_lock:
            client, self._milvus = self._milvus, None
        if client is not None:
            try:
                client.close()
            except Exception:
                log.debug("closing the Milvus client failed", exc_info=True)


def _batch(rows: Sequence[Mapping[str, Any]], spec: CollectionSpec, with_vectors: bool) -> VectorBatch:
    ids = [str(r[_PK_FIELD]) for r in rows]
    if with_vectors and rows:
        vecs = np.asarray([r[_VECTOR_FIELD] for r in rows], dtype=np.float32)
    else:
        vecs = np.zeros((len(rows), spec.dimension if with_vectors else 0), dtype=np.float32)
    fields = {f.name: [r.get(f.name) for r in rows] for f in spec.scalar_fields}
    return VectorBatch(ids=ids, vectors=vecs, fields=fields)


def _check_value(f: ScalarField, value: Any, where: str) -> None:
    """Refuses a scalar value Milvus would refuse (or would store as something else)."""
    if f.type == "string":
        if not isinstance(value, str):
            raise InvalidArgument(f"must be a string, got {type(value).__name__}", field=where)
        if len(value.encode()) > _STRING_MAX:
            raise InvalidArgument(f"must be at most {_STRING_MAX} bytes in UTF-8", field=where)
    elif f.type == "int64":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise InvalidArgument(f"must be an integer, got {type(value).__name__}", field=where)
        if not -(2**63) <= int(value) < 2**63:
            raise InvalidArgument("must fit in 64 bits", field=where)
    elif f.type == "double":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise InvalidArgument(f"must be a number, got {type(value).__name__}", field=where)
    elif f.type == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise InvalidArgument(f"must be a boolean, got {type(value).__name__}", field=where)


def _is_unavailable(exc: MilvusException) -> bool:
    text = f"{exc.code} {exc.message}".lower()
    return any(s in text for s in ("unavailable", "connect", "not ready", "closed", "rate limit"))


#: how a timeout reads when it comes back as a MilvusException: pymilvus's own retry loop ran out of
#: time ("[search] Retry timeout: 0.5s"), or the server's context ended ("proxy TaskCondition context Done")
_TIMEOUT_WORDS = ("deadline exceeded", "retry timeout", "context done", "context deadline")


def _status(exc: BaseException) -> grpc.StatusCode | None:
    """The gRPC status of a failed Milvus call: pymilvus raises the channel's RpcError, or a
    MilvusException carrying the status as its code once its own retries ran out."""
    if isinstance(exc, grpc.RpcError) and callable(getattr(exc, "code", None)):
        return exc.code()  # type: ignore[no-any-return]
    code = getattr(exc, "code", None)
    return code if isinstance(code, grpc.StatusCode) else None


class EmbeddedVectorStore(VectorStore):
    """Milvus Lite: a local file, served by a helper process pymilvus starts. One process may
    open a given file at a time."""

    kind = "embedded"
    _count_needs_filter = True

    def __init__(self, *, path: Path, timeout_seconds: float = 30.0) -> None:
        super().__init__(timeout_seconds=timeout_seconds)
        self.path = path.resolve()
        if self.path.suffix != ".db":
            raise ConfigurationError(f"SHOAL_VECTORS_URL {path}: a Milvus Lite file must end in .db")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.where = f"Milvus Lite file {self.path}"

    def _connect(self) -> MilvusClient:
        return MilvusClient(uri=str(self.path), timeout=self.timeout)

    def count(self, collection: str, *, partition: str | None = None) -> int:
        """Milvus Lite evaluates ``count(*)`` row by row in Python (minutes at a million vectors);
        its partition statistics are exact and immediate."""
        self._spec(collection)
        if partition is None:
            stats = self._call("stats", lambda c: c.get_collection_stats(collection, timeout=self._timeout()))
        else:
            pname = partition_name(partition)
            if not self._has_partition(collection, pname):
                return 0
            stats = self._call("stats", lambda c: c.get_partition_stats(collection, pname, timeout=self._timeout()))
        return int(stats["row_count"])

    def _ensure_loaded(self, name: str) -> None:
        """Milvus Lite writes its index sidecar files without a rename: a process killed while
        writing one leaves a torn file that fails every later load. The sidecars are derived from
        the stored vectors, so a damaged one is removed and rebuilt."""
        try:
            super()._ensure_loaded(name)
        except MilvusException as exc:
            sidecars = sorted((self.path / "collections" / name / "partitions").glob("*/indexes/*.idx"))
            if not sidecars:
                raise
            log.warning(
                "loading %s from Milvus Lite failed (%s); rebuilding its %d index file(s) from the stored vectors",
                name,
                exc.message,
                len(sidecars),
            )
            for sidecar in sidecars:
                sidecar.unlink(missing_ok=True)
            super()._ensure_loaded(name)

    def _index_params(self, client: MilvusClient, spec: CollectionSpec) -> Any:
        params = client.prepare_index_params()
        params.add_index(_VECTOR_FIELD, index_type="FLAT", metric_type=spec.metric)
        return params

    def _create_collection(self, client: MilvusClient, spec: CollectionSpec, schema: Any) -> None:
        # pymilvus waits for a new index by asking the server for a timestamp (AllocTimestamp),
        # which Milvus Lite does not implement: it logs an ERROR with a traceback each time. Lite
        # builds its FLAT index at once, so the index is created without waiting, then loaded.
        client.create_collection(spec.name, schema=schema, consistency_level="Strong", timeout=self._timeout())
        client.create_index(spec.name, self._index_params(client, spec), timeout=self._timeout(), sync=False)
        client.load_collection(spec.name, timeout=self._timeout())

    def _load_partition(self, collection: str, pname: str) -> None:
        # Milvus Lite loads whole collections only (LoadPartitions is UNIMPLEMENTED there) and a
        # partition created in a loaded collection is searchable at once.
        return None

    def _release_partition(self, collection: str, pname: str) -> None:
        # ReleasePartitions is UNIMPLEMENTED in Milvus Lite, which drops a loaded partition.
        return None

    def _scope_to_partition(self, collection: str, pname: str, ids: Sequence[str]) -> Sequence[str]:
        # Milvus Lite ignores partition_name in a delete: keep the ids that are in that
        # partition (a key is unique in a Lite collection, so deleting it is then exact).
        rows = self._call(
            "delete.scope",
            lambda c: c.query(
                collection,
                filter=expr_in(_PK_FIELD, list(ids)),
                output_fields=[_PK_FIELD],
                partition_names=[pname],
                timeout=self._timeout(),
            ),
        )
        return [r[_PK_FIELD] for r in rows]

    def __repr__(self) -> str:
        return f"EmbeddedVectorStore(path={str(self.path)!r})"


class ServerVectorStore(VectorStore):
    """A Milvus server or cluster (``http(s)://host:19530``)."""

    kind = "server"

    def __init__(
        self,
        *,
        url: str,
        token: str | None = None,
        db_name: str = "",
        ca_file: Path | None = None,
        timeout_seconds: float = 30.0,
    ) -> None:
        super().__init__(timeout_seconds=timeout_seconds)
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"SHOAL_VECTORS_URL {url!r}: expected http(s)://host:19530")
        self.url = url
        self._token = token or ""
        self._db = db_name
        self._ca_file = ca_file
        self.where = f"Milvus server {url}"

    def _connect(self) -> MilvusClient:
        kwargs: dict[str, Any] = {"uri": self.url, "timeout": self.timeout}
        if self._token:
            kwargs["token"] = self._token
        if self._db:
            kwargs["db_name"] = self._db
        if self._ca_file is not None and self.url.startswith("https://"):
            kwargs["server_pem_path"] = str(self._ca_file)
        return MilvusClient(**kwargs)

    def _index_params(self, client: MilvusClient, spec: CollectionSpec) -> Any:
        params = client.prepare_index_params()
        params.add_index(
            _VECTOR_FIELD, index_type="HNSW", metric_type=spec.metric, params={"M": 16, "efConstruction": 200}
        )
        return params

    def _search_params(self, spec: CollectionSpec, k: int) -> dict[str, Any]:
        # HNSW's candidate list: four times k (at least 64), for recall@100 above 0.95 on 1M vectors
        return {"metric_type": spec.metric, "params": {"ef": min(max(4 * k, 64), HNSW_MAX_EF)}}

    def __repr__(self) -> str:  # never the token
        return f"ServerVectorStore(url={self.url!r})"


def open_vector_store(
    url: str,
    *,
    token: str | None = None,
    db_name: str = "",
    ca_file: Path | None = None,
    timeout_seconds: float = 30.0,
) -> VectorStore:
    """``http(s)://`` -> a Milvus server; anything else is the path of a Milvus Lite file."""
    if url.startswith(("http://", "https://")):
        return ServerVectorStore(
            url=url, token=token, db_name=db_name, ca_file=ca_file, timeout_seconds=timeout_seconds
        )
    if "://" in url:
        raise ConfigurationError(f"SHOAL_VECTORS_URL {url!r}: use a .db file path or http(s)://host:19530")
    return EmbeddedVectorStore(path=Path(url), timeout_seconds=timeout_seconds)
