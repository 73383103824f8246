"""Behaviour suite of the vector store, run on Milvus Lite and on a real Milvus server.

Every collection is named ``t_<uuid hex>`` so the ``vector_store`` fixture drops it afterwards.
Data are small (a few hundred 16-d vectors) and drawn from a fixed seed.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoal.common import telemetry
from shoal.common.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from shoal.common.stores.vectors import (
    CollectionSpec,
    EmbeddedVectorStore,
    ScalarField,
    ServerVectorStore,
    VectorStore,
    check_identifier,
    collection_name,
    expr_and,
    expr_eq,
    expr_in,
    expr_not_in,
    partition_name,
)
from tests.harness._wait import scaled

SEED = 20240611
DIM = 16
N = 500
MILVUS_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")

FIELDS = (
    ScalarField("label", "string"),
    ScalarField("frame", "int64"),
    ScalarField("score", "double"),
    ScalarField("flag", "bool"),
)

# Values that would change the meaning of a filter if pasted into it unescaped.
NASTY = [
    'x" or pk != "',
    'a\\" || true || "',
    'a\\\\" || true || "',
    '") or ("1" == "1',
    "' or '1' == '1",
    'say "hi"',
    "back\\slash",
    "trailing backslash\\",
    "\\",
    '"',
    "new\nline",
    "carriage\rreturn",
    "tab\tchar",
    "ünïcødé ✓ 日本語 🐟",
    " or 1 == 1",
    "",
]


# --- helpers -------------------------------------------------------------------------------
def _name() -> str:
    return f"t_{uuid.uuid4().hex}"


def _spec(name: str | None = None, *, metric: str = "COSINE", dim: int = DIM, fields=FIELDS) -> CollectionSpec:
    return CollectionSpec(name=name or _name(), dimension=dim, metric=metric, scalar_fields=tuple(fields))  # type: ignore[arg-type]


def _reopen(store: VectorStore) -> VectorStore:
    """Another store on the same Milvus: nothing cached, as after a restart."""
    if isinstance(store, EmbeddedVectorStore):
        return EmbeddedVectorStore(path=store.path, timeout_seconds=30)
    assert isinstance(store, ServerVectorStore)
    return ServerVectorStore(url=store.url, timeout_seconds=30)


def _fields(n: int, *, offset: int = 0, label: str = "plain") -> dict[str, list]:
    return {
        "label": [label] * n,
        "frame": [offset + i for i in range(n)],
        "score": [(offset + i) / 7.0 for i in range(n)],
        "flag": [(offset + i) % 2 == 0 for i in range(n)],
    }


def _ids(prefix: str, n: int, *, offset: int = 0) -> list[str]:
    return [f"{prefix}/{offset + i}" for i in range(n)]


def _brute_force(data: np.ndarray, queries: np.ndarray, metric: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k (indices, scores as Milvus reports them), nearest first."""
    data = data.astype(np.float64)
    queries = queries.astype(np.float64)
    if metric == "COSINE":
        dn = data / np.linalg.norm(data, axis=1, keepdims=True)
        qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        scores = qn @ dn.T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    elif metric == "IP":
        scores = queries @ data.T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    else:  # Milvus reports the squared L2 distance
        scores = ((queries[:, None, :] - data[None, :, :]) ** 2).sum(axis=2)
        order = np.argsort(scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


def _all_ids(store: VectorStore, collection: str, **kwargs) -> list[str]:
    out: list[str] = []
    for batch in store.iterate(collection, with_vectors=False, **kwargs):
        out.extend(batch.ids)
    return out


def _concurrently(*calls: Callable[[], Any]) -> list[Any]:
    """Results of independent calls made at once. A Strong read waits for the server's next
    time tick (~0.3 s on Milvus 2.3), so this keeps the server run short; it also uses the store
    from several threads, as gRPC handlers do."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [f.result() for f in futures]


def _is_server(store: VectorStore) -> bool:
    return isinstance(store, ServerVectorStore)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(SEED)


@pytest.fixture
def filled(vector_store: VectorStore, rng: np.random.Generator) -> Iterator[tuple[VectorStore, str, dict]]:
    """A COSINE collection with 300 records in dataset "ds-a" and 200 in "ds-b"."""
    spec = _spec()
    vector_store.ensure_collection(spec)
    data = rng.standard_normal((N, DIM)).astype(np.float32)
    ids_a, ids_b = _ids("ds-a", 300), _ids("ds-b", 200)
    assert vector_store.upsert(spec.name, partition="ds-a", ids=ids_a, vectors=data[:300], fields=_fields(300)) == 300
    assert (
        vector_store.upsert(spec.name, partition="ds-b", ids=ids_b, vectors=data[300:], fields=_fields(200, offset=300))
        == 200
    )
    yield vector_store, spec.name, {"data": data, "ids": ids_a + ids_b, "ids_a": ids_a, "ids_b": ids_b}


# --- 1. collections --------------------------------------------------------------------------
def test_ensure_collection_is_idempotent_and_refuses_another_shape(vector_store: VectorStore) -> None:
    spec = _spec(metric="L2")
    assert not vector_store.has_collection(spec.name)
    vector_store.ensure_collection(spec)
    vector_store.ensure_collection(spec)
    assert vector_store.has_collection(spec.name)
    assert vector_store.list_collections().count(spec.name) == 1
    vector_store.ping()

    with pytest.raises(FailedPrecondition):
        vector_store.ensure_collection(_spec(spec.name, metric="L2", dim=DIM + 1))
    with pytest.raises(FailedPrecondition):
        vector_store.ensure_collection(_spec(spec.name, metric="COSINE"))

    # Another process (nothing cached) sees the same shape from Milvus itself.
    other = _reopen(vector_store)
    try:
        other.ensure_collection(spec)
        with pytest.raises(FailedPrecondition):
            other.ensure_collection(_spec(spec.name, metric="L2", dim=DIM * 2))
        with pytest.raises(FailedPrecondition):
            other.ensure_collection(_spec(spec.name, metric="IP"))
        # The cold store learns the scalar fields too: it can write records.
        other.upsert(spec.name, partition="d", ids=["x"], vectors=np.ones((1, DIM)), fields=_fields(1))
        assert other.count(spec.name) == 1
    finally:
        other.close()

    assert vector_store.list_collections() == sorted(vector_store.list_collections())

    vector_store.drop_collection(spec.name)
    assert not vector_store.has_collection(spec.name)
    assert spec.name not in vector_store.list_collections()
    vector_store.drop_collection(spec.name)  # again: nothing to do
    with pytest.raises(NotFound):
        vector_store.count(spec.name)
    # Dropped, it can be made again with another shape.
    vector_store.ensure_collection(_spec(spec.name, metric="COSINE", dim=DIM + 1))
    vector_store.upsert(spec.name, partition="d", ids=["y"], vectors=np.ones((1, DIM + 1)), fields=_fields(1))
    assert vector_store.count(spec.name) == 1


# --- 2. upsert, count, get -------------------------------------------------------------------
def test_upsert_count_redelivery_and_get(vector_store: VectorStore, rng: np.random.Generator) -> None:
    store = vector_store
    spec = _spec()
    store.ensure_collection(spec)
    name = spec.name
    assert store.count(name) == 0
    # Primary keys are the caller's; they may hold quotes and backslashes.
    ids_a = [f'ds-a/frame "{i}"\\obj' for i in range(300)]
    ids_b = _ids("ds-b", 200)
    first = rng.standard_normal((N, DIM)).astype(np.float32)
    store.upsert(name, partition="ds-a", ids=ids_a, vectors=first[:300], fields=_fields(300))
    store.upsert(name, partition="ds-b", ids=ids_b, vectors=first[300:], fields=_fields(200, offset=300))
    counts = _concurrently(
        lambda: store.count(name),
        lambda: store.count(name, partition="ds-a"),
        lambda: store.count(name, partition="ds-b"),
        lambda: store.count(name, partition="never-written"),
    )
    assert counts == [N, 300, 200, 0]

    # A redelivery of dataset a, with changed vectors and fields: overwritten in place, twice.
    for round_ in range(2):
        second = rng.standard_normal((300, DIM)).astype(np.float32)
        changed = _fields(300, offset=1000 * (round_ + 1), label=f"round{round_}")
        assert store.upsert(name, partition="ds-a", ids=ids_a, vectors=second, fields=changed) == 300
        *counts, got = _concurrently(
            lambda: store.count(name),
            lambda: store.count(name, partition="ds-a"),
            lambda: store.count(name, partition="ds-b"),
            lambda: store.get(name, ids_a),
        )
        assert counts == [N, 300, 200]
        assert got.ids == ids_a
        assert got.vectors.dtype == np.float32
        assert got.vectors.shape == (300, DIM)
        assert np.array_equal(got.vectors, second)
        assert got.fields == changed

    # Dataset b was untouched; get keeps the order asked and skips missing ids.
    asked = [ids_b[5], "missing", ids_a[2], ids_b[199], 'nope" or pk != "', ids_a[0]]
    got_b, got, without, missing, empty = _concurrently(
        lambda: store.get(name, ids_b),
        lambda: store.get(name, asked),
        lambda: store.get(name, asked, with_vectors=False),
        lambda: store.get(name, ["missing"]),
        lambda: store.get(name, []),
    )
    assert got_b.ids == ids_b
    assert np.array_equal(got_b.vectors, first[300:])
    assert got.ids == [ids_b[5], ids_a[2], ids_b[199], ids_a[0]]
    assert np.array_equal(got.vectors[0], first[305])
    assert np.array_equal(got.vectors[2], first[499])
    assert got.fields["frame"] == [305, 2000 + 2, 499, 2000]
    assert without.ids == got.ids
    assert without.vectors.shape == (4, 0)
    assert without.fields == got.fields
    assert missing.ids == []
    assert empty.ids == [] and empty.vectors.shape[0] == 0
    assert store.upsert(name, partition="ds-a", ids=[], vectors=np.zeros((0, DIM)), fields=_fields(0)) == 0

    # One batch naming a key twice: one record, the last one given.
    dup = np.arange(4 * DIM, dtype=np.float32).reshape(4, DIM)
    assert store.upsert(name, partition="ds-c", ids=["c", "d", "c", "c"], vectors=dup, fields=_fields(4)) == 2
    count_c, got = _concurrently(lambda: store.count(name, partition="ds-c"), lambda: store.get(name, ["c", "d"]))
    assert count_c == 2
    assert np.array_equal(got.vectors, dup[[3, 1]])
    assert got.fields["frame"] == [3, 1]


def test_a_large_upsert_goes_in_several_requests_and_lands_whole(
    vector_store: VectorStore, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shoal.common.stores import vectors as vector_module

    monkeypatch.setattr(vector_module, "_UPSERT_BYTES", 40 * (DIM * 4 + 256))  # 40 records per request
    spec = _spec()
    vector_store.ensure_collection(spec)
    ids = _ids("ds-big", 130)
    vecs = rng.standard_normal((130, DIM)).astype(np.float32)
    # a key given twice, in different requests: the last one wins, as in one request
    ids[120] = ids[5]
    assert vector_store.upsert(spec.name, partition="ds-big", ids=ids, vectors=vecs, fields=_fields(130)) == 129
    assert vector_store.count(spec.name, partition="ds-big") == 129
    got = vector_store.get(spec.name, [ids[0], ids[5], ids[129]])
    assert np.array_equal(got.vectors, vecs[[0, 120, 129]])


# --- 3. search -------------------------------------------------------------------------------
@pytest.mark.parametrize("metric", ["COSINE", "L2"])
def test_search_matches_brute_force(vector_store: VectorStore, rng: np.random.Generator, metric: str) -> None:
    spec = _spec(metric=metric)
    vector_store.ensure_collection(spec)
    data = rng.standard_normal((N, DIM)).astype(np.float32)
    ids = _ids("ds", N)
    vector_store.upsert(spec.name, partition="ds", ids=ids, vectors=data, fields=_fields(N))
    queries = rng.standard_normal((25, DIM)).astype(np.float32)
    k = 10
    hits = vector_store.search(spec.name, queries, k=k)
    order, scores = _brute_force(data, queries, metric, k)
    assert len(hits) == len(queries)
    found = 0
    for q, row in enumerate(hits):
        expected = [ids[i] for i in order[q]]
        got = [h.id for h in row]
        assert len(got) == k
        assert len(set(got)) == k
        found += len(set(got) & set(expected))
        if not _is_server(vector_store):  # FLAT: exact, nearest first
            assert got == expected, f"query {q}"
            assert np.allclose([h.distance for h in row], scores[q], rtol=1e-4, atol=1e-4)
        # Every reported distance is the true distance of that record, nearest first.
        dist = np.array([h.distance for h in row])
        _, all_scores = _brute_force(data, queries[q : q + 1], metric, N)
        true = dict(zip([ids[i] for i in _brute_force(data, queries[q : q + 1], metric, N)[0][0]], all_scores[0]))
        assert np.allclose(dist, [true[i] for i in got], rtol=1e-4, atol=1e-4)
        if metric == "L2":
            assert np.all(np.diff(dist) >= -1e-6)
        else:
            assert np.all(np.diff(dist) <= 1e-6)
    recall = found / (k * len(queries))
    assert recall >= (0.95 if _is_server(vector_store) else 1.0), recall

    # k larger than the collection: every record, once.
    everything = vector_store.search(spec.name, queries[:1], k=1000)[0]
    assert sorted(h.id for h in everything) == sorted(ids)


def test_flush_seals_what_was_written_and_the_index_covers_it(
    vector_store: VectorStore, rng: np.random.Generator
) -> None:
    spec = _spec()
    vector_store.ensure_collection(spec)
    data = rng.standard_normal((N, DIM)).astype(np.float32)
    vector_store.upsert(spec.name, partition="ds", ids=_ids("ds", N), vectors=data, fields=_fields(N))
    vector_store.flush(spec.name)
    deadline = time.monotonic() + scaled(120)  # a loaded machine builds the index later, never not at all
    while (progress := vector_store.index_progress(spec.name)) != (N, N) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert progress == (N, N)
    hits = vector_store.search(spec.name, data[:5], k=1)
    assert [h[0].id for h in hits] == _ids("ds", N)[:5]  # each vector finds itself once indexed


def test_search_restricted_by_partition_and_filter(filled) -> None:
    store, name, d = filled
    data, ids, ids_a, ids_b = d["data"], d["ids"], d["ids_a"], d["ids_b"]
    rng = np.random.default_rng(SEED + 1)
    queries = rng.standard_normal((5, DIM)).astype(np.float32)

    def all_hits(**kwargs: Any) -> list[str]:
        return sorted(h.id for h in store.search(name, queries[:1], k=1000, **kwargs)[0])

    # Partitions restrict results to that dataset.
    top_a, top_b, all_a, all_b, both, some = _concurrently(
        lambda: store.search(name, queries, k=10, partitions=["ds-a"]),
        lambda: store.search(name, queries, k=10, partitions=["ds-b"]),
        lambda: all_hits(partitions=["ds-a"]),
        lambda: all_hits(partitions=["ds-b"]),
        lambda: all_hits(partitions=["ds-a", "ds-b"]),
        lambda: all_hits(partitions=["never-written", "ds-b"]),
    )
    for hits, ds_ids, lo in ((top_a, ids_a, 0), (top_b, ids_b, 300)):
        order, _ = _brute_force(data[lo : lo + len(ds_ids)], queries, "COSINE", 10)
        for q, row in enumerate(hits):
            got = [h.id for h in row]
            assert len(got) == 10
            assert set(got) <= set(ds_ids)
            if not _is_server(store):
                assert got == [ds_ids[i] for i in order[q]]
    assert all_a == sorted(ids_a)
    assert all_b == sorted(ids_b)
    assert both == sorted(ids)
    # No dataset, or datasets never written, select nothing; unknown ones add nothing.
    assert some == sorted(ids_b)
    assert store.search(name, queries[:2], k=10, partitions=[]) == [[], []]
    assert store.search(name, queries[:2], k=10, partitions=["never-written"]) == [[], []]

    # A partition created after the collection was loaded is searchable at once, also when
    # another store instance writes it, and a partition that instance found already there.
    other = _reopen(store)
    try:
        vecs = rng.standard_normal((4, DIM)).astype(np.float32)
        other.upsert(name, partition="ds-c", ids=_ids("ds-c", 4), vectors=vecs, fields=_fields(4, offset=900))
        other.upsert(
            name, partition="ds-b", ids=_ids("ds-b", 4, offset=200), vectors=vecs, fields=_fields(4, offset=950)
        )
        hits_c, hits_b, count = _concurrently(
            lambda: other.search(name, vecs, k=3, partitions=["ds-c"]),
            lambda: other.search(name, vecs[:1], k=1000, partitions=["ds-b"]),
            lambda: other.count(name),
        )
        assert [row[0].id for row in hits_c] == _ids("ds-c", 4)
        assert all(len(row) == 3 for row in hits_c)
        assert len(hits_b[0]) == 204
        assert count == N + 8
    finally:
        other.close()
    hits = store.search(name, vecs, k=1, partitions=["ds-c"])
    assert [row[0].id for row in hits] == _ids("ds-c", 4)
    store.delete(name, ids=_ids("ds-c", 4) + _ids("ds-b", 4, offset=200))

    # Filters restrict results, and output_fields come back.
    frames = [3, 17, 42, 301, 499]
    by_frames, f250, conj, f14, not_in, empty_in, unfiltered = _concurrently(
        lambda: store.search(name, queries, k=10, filter=expr_in("frame", frames), output_fields=["frame", "label"]),
        lambda: all_hits(filter=expr_eq("frame", 250)),
        # Booleans, doubles and a conjunction with the partition.
        lambda: all_hits(
            partitions=["ds-b"], filter=expr_and(expr_eq("flag", True), expr_in("frame", [300, 301, 302, 10]))
        ),
        lambda: all_hits(filter=expr_eq("score", 14 / 7.0)),
        lambda: all_hits(filter=expr_not_in("frame", list(range(1, N)))),
        # An empty "in" matches nothing; no filter at all matches everything.
        lambda: store.search(name, queries, k=10, filter=expr_in("label", [])),
        lambda: all_hits(filter=expr_and()),
    )
    for row in by_frames:
        assert sorted(h.fields["frame"] for h in row) == frames
        assert {h.id for h in row} == {ids[f] for f in frames}
        assert all(h.fields["label"] == "plain" for h in row)
    assert f250 == [ids[250]]
    assert conj == sorted([ids[300], ids[302]])
    assert f14 == [ids[14]]
    assert not_in == [ids[0]]
    assert empty_in == [[] for _ in range(5)]
    assert unfiltered == sorted(ids)


# --- 4. filters are values, never expressions ------------------------------------------------
def test_filter_values_cannot_inject(vector_store: VectorStore, rng: np.random.Generator) -> None:
    store = vector_store
    spec = _spec()
    store.ensure_collection(spec)
    name = spec.name
    labels: list[str] = []
    for v in NASTY:
        labels += [v, v]
    labels += ["plain"] * 20 + ["x", "a\\", "a\\\\", 'say \\"hi\\"']
    ids = _ids("ds", len(labels))
    fields = {
        "label": labels,
        "frame": list(range(len(labels))),
        "score": [0.0] * len(labels),
        "flag": [False] * len(labels),
    }
    vecs = rng.standard_normal((len(labels), DIM)).astype(np.float32)
    store.upsert(name, partition="ds", ids=ids, vectors=vecs, fields=fields)
    assert store.get(name, ids).fields["label"] == labels

    def rows_with(*values: str) -> list[str]:
        return sorted(i for i, lab in zip(ids, labels) if lab in values)

    def search_ids(flt: str) -> list[str]:
        return sorted(h.id for h in store.search(name, vecs[:1], k=100, filter=flt)[0])

    def query_ids(flt: str) -> list[str]:
        return sorted(_all_ids(store, name, filter=flt))

    # Each value alone, then in lists, in search filters and in queries (iterate).
    cases: list[tuple[str, list[str], Callable[[str], list[str]]]] = [
        (expr_eq("label", v), rows_with(v), search_ids) for v in NASTY
    ]
    cases += [
        (expr_in("label", NASTY[:2]), rows_with(*NASTY[:2]), search_ids),
        (expr_in("label", NASTY), rows_with(*NASTY), search_ids),
        (expr_not_in("label", NASTY), sorted(set(ids) - set(rows_with(*NASTY))), search_ids),
        (expr_and(expr_eq("label", NASTY[0]), expr_eq("frame", 1)), ["ds/1"], search_ids),
        (expr_and(expr_eq("label", NASTY[1]), expr_eq("frame", 1)), [], search_ids),
        # Values made of the pieces an attacker would need match only themselves.
        (expr_eq("label", "x"), rows_with("x"), search_ids),
        (expr_eq("label", "nothing"), [], search_ids),
        (expr_eq("label", NASTY[0]), rows_with(NASTY[0]), query_ids),
        (expr_in("label", NASTY[1:4]), rows_with(*NASTY[1:4]), query_ids),
    ]
    assert all(len(want) == 2 for _, want, _ in cases[: len(NASTY)])
    results = _concurrently(*[functools.partial(run, flt) for flt, _, run in cases])
    for (flt, want, _), got in zip(cases, results):
        assert got == want, flt

    # Primary keys are escaped the same way: get and delete touch only the key named.
    sneaky = ['k" or pk != "', "k\\", 'k\\" || true || "']
    store.upsert(name, partition="ds", ids=sneaky, vectors=vecs[:3], fields={k: v[:3] for k, v in fields.items()})
    assert store.get(name, [sneaky[0]]).ids == [sneaky[0]]
    store.delete(name, ids=[sneaky[0], sneaky[2]])
    count, got = _concurrently(lambda: store.count(name), lambda: store.get(name, sneaky))
    assert count == len(labels) + 1
    assert got.ids == [sneaky[1]]


def test_identifiers_and_values_are_checked() -> None:
    for bad in ("pk or 1", "pk == 1", "1pk", "", "a-b", "a b", "pk)", 'x"', "ü"):
        with pytest.raises(InvalidArgument):
            check_identifier(bad, what="field name")
        with pytest.raises(InvalidArgument):
            expr_eq(bad, "x")
        with pytest.raises(InvalidArgument):
            expr_in(bad, ["x"])
        with pytest.raises(InvalidArgument):
            expr_not_in(bad, ["x"])
    assert check_identifier("_ok_1", what="field name") == "_ok_1"
    with pytest.raises(InvalidArgument):
        check_identifier("a" * 256, what="field name")
    with pytest.raises(InvalidArgument):
        expr_eq("label", "nul\x00byte")
    with pytest.raises(InvalidArgument):
        expr_eq("score", float("nan"))
    with pytest.raises(InvalidArgument):
        expr_in("score", [1.0, float("inf")])
    with pytest.raises(InvalidArgument):
        expr_eq("label", object())
    with pytest.raises(InvalidArgument):
        CollectionSpec(name="t_x", dimension=4, scalar_fields=(ScalarField("pk or 1", "string"),))
    with pytest.raises(InvalidArgument):
        CollectionSpec(name="t x", dimension=4)
    with pytest.raises(InvalidArgument):
        CollectionSpec(name="t_x", dimension=4, scalar_fields=(ScalarField("pk", "string"),))
    assert expr_eq("flag", True) == "flag == true"
    assert expr_eq("frame", np.int64(3)) == "frame == 3"


# --- 5. iterate ------------------------------------------------------------------------------
def test_iterate_yields_every_record_once(filled) -> None:
    store, name, d = filled
    data, ids = d["data"], d["ids"]
    by_id = dict(zip(ids, data))

    all_batches, part_b, no_vectors, filtered, never = _concurrently(
        lambda: list(store.iterate(name, batch_size=128)),
        lambda: _all_ids(store, name, partition="ds-b", batch_size=120),
        lambda: list(store.iterate(name, batch_size=1000, with_vectors=False)),
        lambda: _all_ids(store, name, batch_size=30, filter=expr_in("frame", list(range(0, N, 10)))),
        # A dataset never written is an empty one.
        lambda: _all_ids(store, name, partition="never-written"),
    )
    seen: list[str] = []
    for batch in all_batches:
        assert 0 < len(batch.ids) <= 128
        assert batch.vectors.shape == (len(batch.ids), DIM)
        assert batch.vectors.dtype == np.float32
        for i, pk in enumerate(batch.ids):
            assert np.array_equal(batch.vectors[i], by_id[pk])
            assert batch.fields["frame"][i] == ids.index(pk)
        seen.extend(batch.ids)
    assert len(seen) == len(set(seen)) == N
    assert set(seen) == set(ids)

    assert len(part_b) == len(set(part_b))
    assert set(part_b) == set(d["ids_b"])
    assert sum(len(b.ids) for b in no_vectors) == N
    assert all(b.vectors.shape == (len(b.ids), 0) for b in no_vectors)
    assert sorted(filtered) == sorted(ids[0:N:10])
    assert never == []

    # Stopping early is fine (the iterator is closed).
    it = store.iterate(name, batch_size=10)
    assert len(next(it).ids) == 10
    it.close()


# --- 6. delete -------------------------------------------------------------------------------
def test_delete_removes_exactly_those_and_drop_partition_one_dataset(filled) -> None:
    store, name, d = filled
    ids, ids_a, ids_b, data = d["ids"], d["ids_a"], d["ids_b"], d["data"]
    gone = ids_a[:5] + ids_b[-5:]
    left = [i for i in ids if i not in gone]
    store.delete(name, ids=[*gone, "missing"])
    store.delete(name, ids=[])
    *counts, got_gone, got_left, iterated, hits = _concurrently(
        lambda: store.count(name),
        lambda: store.count(name, partition="ds-a"),
        lambda: store.count(name, partition="ds-b"),
        lambda: store.get(name, gone),
        lambda: store.get(name, left, with_vectors=False),
        lambda: _all_ids(store, name),
        lambda: store.search(name, data[:3], k=1000),
    )
    assert counts == [N - 10, 295, 195]
    assert got_gone.ids == []
    assert got_left.ids == left
    assert set(iterated) == set(left)
    assert all({h.id for h in row} == set(left) for row in hits)

    # Scoped to a partition: ids of another dataset stay; in a dataset never written there is
    # nothing to delete.
    store.delete(name, ids=[ids_a[10], ids_b[0]], partition="ds-b")
    store.delete(name, ids=[ids_a[11]], partition="never-written")
    got, count = _concurrently(
        lambda: store.get(name, [ids_a[10], ids_b[0], ids_a[11]], with_vectors=False), lambda: store.count(name)
    )
    assert got.ids == [ids_a[10], ids_a[11]]
    assert count == N - 11
    # A deleted id can be written again.
    store.upsert(name, partition="ds-a", ids=gone[:1], vectors=data[:1], fields=_fields(1))
    count, got = _concurrently(lambda: store.count(name), lambda: store.get(name, gone[:1]))
    assert count == N - 10
    assert got.ids == gone[:1]

    # drop_partition drops one dataset.
    store.upsert(name, partition="ds-b", ids=ids_b, vectors=data[300:], fields=_fields(200, offset=300))
    store.drop_partition(name, "ds-a")
    count, count_a, got, hits, hits_a = _concurrently(
        lambda: store.count(name),
        lambda: store.count(name, partition="ds-a"),
        lambda: store.get(name, ids_a[:3] + ids_b[:3], with_vectors=False),
        lambda: store.search(name, data[:1], k=1000),
        lambda: store.search(name, data[:1], k=10, partitions=["ds-a"]),
    )
    assert (count, count_a) == (200, 0)
    assert got.ids == ids_b[:3]
    assert {h.id for h in hits[0]} == set(ids_b)
    assert hits_a == [[]]
    store.drop_partition(name, "ds-a")  # again: nothing to do
    store.drop_partition(name, "never-written")
    # The dataset can be written again, and is searchable.
    store.upsert(name, partition="ds-a", ids=ids_a[:10], vectors=data[:10], fields=_fields(10))
    count_a, hits = _concurrently(
        lambda: store.count(name, partition="ds-a"),
        lambda: store.search(name, data[:3], k=1, partitions=["ds-a"]),
    )
    assert count_a == 10
    assert [row[0].id for row in hits] == ids_a[:3]


# --- 7. invalid input ------------------------------------------------------------------------
def test_invalid_input_is_refused_and_valid_extremes_round_trip(vector_store: VectorStore) -> None:
    store = vector_store
    spec = _spec()
    store.ensure_collection(spec)
    name = spec.name
    ok = np.ones((3, DIM), dtype=np.float32)
    ids = _ids("d", 3)

    def upsert(**overrides) -> None:
        kwargs = {"partition": "d", "ids": ids, "vectors": ok, "fields": _fields(3)}
        kwargs.update(overrides)
        store.upsert(name, **kwargs)

    bad_vectors = [
        np.ones((3, DIM + 1)),
        np.ones((3, DIM - 1)),
        np.ones(DIM),
        np.ones((3, DIM, 1)),
        np.full((3, DIM), 1e39),  # overflows float32 to infinity
    ]
    for nan in (np.nan, np.inf, -np.inf):
        v = ok.copy()
        v[1, 3] = nan
        bad_vectors.append(v)
    for v in bad_vectors:
        with pytest.raises(InvalidArgument):
            upsert(vectors=v)
    with pytest.raises(InvalidArgument):
        upsert(ids=ids[:2])
    with pytest.raises(InvalidArgument):
        upsert(ids=[*ids, "d/9"])
    with pytest.raises(InvalidArgument):
        upsert(fields={k: v for k, v in _fields(3).items() if k != "label"})
    with pytest.raises(InvalidArgument):
        upsert(fields=None)
    with pytest.raises(InvalidArgument):
        upsert(fields={**_fields(3), "extra": [1, 2, 3]})
    with pytest.raises(InvalidArgument):
        upsert(fields={**_fields(3), "frame": [1, 2]})
    for field_name, values in (
        ("label", [1, 2, 3]),
        ("label", ["ok", None, "ok"]),
        ("label", ["ok", "é" * 513, "ok"]),  # 1026 bytes in UTF-8
        ("frame", [1, 2.5, 3]),
        ("frame", [1, "2", 3]),
        ("frame", [1, True, 3]),
        ("frame", [1, 2**63, 3]),
        ("score", [1.0, "x", 3.0]),
        ("score", [1.0, None, 3.0]),
        ("flag", [True, 1, False]),
    ):
        with pytest.raises(InvalidArgument):
            upsert(fields={**_fields(3), field_name: values})
    with pytest.raises(InvalidArgument):
        upsert(ids=["d/0", 1, "d/2"])
    with pytest.raises(InvalidArgument):
        upsert(ids=["d/0", "x" * 513, "d/2"])

    for k in (0, -1, 16385):
        with pytest.raises(InvalidArgument):
            store.search(name, ok, k=k)
    with pytest.raises(InvalidArgument):
        store.search(name, np.ones((1, DIM + 1)), k=1)
    with pytest.raises(InvalidArgument):
        store.search(name, np.ones(DIM), k=1)
    q = ok[:1].copy()
    q[0, 0] = np.nan
    with pytest.raises(InvalidArgument):
        store.search(name, q, k=1)

    missing = _name()
    with pytest.raises(NotFound):
        store.upsert(missing, partition="d", ids=ids, vectors=ok, fields=_fields(3))
    with pytest.raises(NotFound):
        store.search(missing, ok, k=1)
    with pytest.raises(NotFound):
        store.get(missing, ids)
    with pytest.raises(NotFound):
        store.count(missing)
    assert store.count(name) == 0  # nothing refused was written

    # What is valid, up to the limits, round-trips exactly; numpy scalars are accepted.
    extremes = {
        "label": ["", "ünïcødé ✓ 日本語 🐟", 'quote " and \\ backslash', "line\nbreak", "é" * 512, "z" * 1024],
        "frame": [0, -1, 2**40, -(2**63), 2**63 - 1, np.int64(7)],
        "score": [0.0, -1.5, 1e-300, 1.7976931348623157e308, math.pi, np.float64(0.5)],
        "flag": [True, False, True, False, True, np.bool_(True)],
    }
    ext_ids = ["", "x" * 512, "日本/🐟", 'q"uote', "back\\slash", "np"]
    vecs = np.random.default_rng(SEED).standard_normal((6, DIM)).astype(np.float32)
    store.upsert(name, partition="d", ids=ext_ids, vectors=vecs, fields=extremes)
    got = store.get(name, ext_ids)
    assert got.ids == ext_ids
    assert np.array_equal(got.vectors, vecs)
    assert got.fields == extremes
    assert [type(v) for v in got.fields["frame"]] == [int] * 6
    assert [type(v) for v in got.fields["flag"]] == [bool] * 6
    hits = store.search(name, vecs, k=16384, output_fields=["label"])
    assert [row[0].id for row in hits] == ext_ids  # COSINE: each vector is its own nearest
    assert all(len(row) == 6 for row in hits)
    assert hits[0][0].fields["label"] == ""


# --- 8. an unreachable server ----------------------------------------------------------------
def test_unreachable_server_is_unavailable_quickly() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = ServerVectorStore(url=f"http://127.0.0.1:{port}", timeout_seconds=3)
    try:
        for _ in range(2):  # the first call connects; the second must fail the same way
            t0 = time.monotonic()
            with pytest.raises(Unavailable):
                store.ping()
            assert time.monotonic() - t0 < 10
        t0 = time.monotonic()
        with pytest.raises(Unavailable):
            store.has_collection("t_x")
        assert time.monotonic() - t0 < 10
    finally:
        store.close()

    # A port that accepts connections but never answers: the timeout bounds the wait.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        store = ServerVectorStore(url=f"http://127.0.0.1:{listener.getsockname()[1]}", timeout_seconds=2)
        try:
            t0 = time.monotonic()
            with pytest.raises(Unavailable):
                store.ping()
            assert time.monotonic() - t0 < 8
        finally:
            store.close()


def _large(store: VectorStore, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """A collection big enough that 50 queries at k=100 take far longer than a millisecond."""
    name = _name()
    store.ensure_collection(_spec(name, fields=(), dim=64))
    n = 20_000
    store.upsert(name, partition="d", ids=_ids("v", n), vectors=rng.normal(size=(n, 64)).astype(np.float32), fields={})
    return name, rng.normal(size=(50, 64)).astype(np.float32)


def test_a_timeout_is_reported_as_a_timeout_naming_the_operation(
    vector_store: VectorStore, rng: np.random.Generator
) -> None:
    name, queries = _large(vector_store, rng)
    configured = vector_store.timeout
    vector_store.timeout = 0.001
    try:
        with pytest.raises(DeadlineExceeded) as info:
            vector_store.search(name, queries, k=100)
    finally:
        vector_store.timeout = configured
    message = str(info.value)
    assert "search timed out after 0.001s" in message and "SHOAL_STORE_TIMEOUT_SECONDS" in message
    assert "unreachable" not in message
    assert len(vector_store.search(name, queries[:1], k=5)[0]) == 5  # the store itself is fine


def test_a_call_for_an_rpc_ends_with_the_callers_deadline(vector_store: VectorStore, rng: np.random.Generator) -> None:
    name, queries = _large(vector_store, rng)
    ctx = telemetry.RequestContext(request_id="r", method="/m", deadline=time.monotonic() + 0.001)
    token = telemetry.set_request(ctx)
    try:
        with pytest.raises(DeadlineExceeded) as info:
            vector_store.search(name, queries, k=100)
    finally:
        telemetry.reset_request(token)
    assert "caller's deadline" in str(info.value) and "search" in str(info.value)


def test_creating_a_collection_on_milvus_lite_logs_no_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = EmbeddedVectorStore(path=tmp_path / "vectors.db", timeout_seconds=30)
    try:
        name = _name()
        with caplog.at_level(logging.INFO):
            store.ensure_collection(_spec(name))
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
        vectors = np.eye(DIM, dtype=np.float32)[:3]
        store.upsert(name, partition="d", ids=["a", "b", "c"], vectors=vectors, fields=_fields(3))
        assert store.search(name, vectors[1:2], k=1)[0][0].id == "b"  # indexed and loaded
    finally:
        store.close()


# --- 9. names --------------------------------------------------------------------------------
def test_collection_and_partition_names_are_valid_and_distinct() -> None:
    samples = ["a-b", "a_b", "a b", "a.b", "", "ünïcødé", "日本語", "x" * 1000, "1abc", "a\x00b", "__"]
    cnames = {collection_name(p, s) for p in samples for s in samples}
    assert len(cnames) == len(samples) ** 2
    for name in cnames:
        assert MILVUS_IDENT.match(name), name
        assert len(name) <= 255
    assert collection_name("p", "a-b") != collection_name("p", "a_b")
    assert collection_name("a-b", "s") != collection_name("a_b", "s")
    # The separator cannot be forged by the parts.
    assert collection_name("a__b", "c") != collection_name("a", "b__c")
    assert collection_name("a", "bc") != collection_name("ab", "c")
    assert collection_name("p", "s") == collection_name("p", "s")

    pnames = {partition_name(s) for s in samples}
    assert len(pnames) == len(samples)
    for name in pnames:
        assert MILVUS_IDENT.match(name), name
        assert len(name) <= 255
    assert partition_name("a-b") != partition_name("a_b")
    assert partition_name("ds") == partition_name("ds")


def test_filter_expressions() -> None:
    assert expr_in("label", []) == "label in []"
    assert expr_not_in("label", []) == ""
    assert expr_and() == ""
    assert expr_and("", expr_eq("frame", 1)) == "(frame == 1)"
    assert expr_and(expr_eq("a", 1), expr_in("b", ["x"])) == '(a == 1) and (b in ["x"])'
    assert expr_eq("label", 'x" or pk != "') == 'label == "x\\" or pk != \\""'
    assert expr_eq("label", "a\\") == 'label == "a\\\\"'
    assert expr_eq("label", "a\nb") == 'label == "a\\nb"'
    assert expr_eq("score", 0.5) == "score == 0.5"
    assert expr_eq("flag", False) == "flag == false"


def test_milvus_lite_recovers_from_an_index_file_torn_by_a_crash(tmp_path: Path) -> None:
    """A process killed while Milvus Lite writes an index sidecar leaves a torn file; the next
    process must still read every vector (the sidecar is rebuilt from the stored data)."""
    import subprocess
    import sys
    import textwrap

    db = tmp_path / "torn.db"
    script = textwrap.dedent(
        """
        import sys, numpy as np
        from pathlib import Path
        from shoal.common.stores.vectors import CollectionSpec, EmbeddedVectorStore
        store = EmbeddedVectorStore(path=Path(sys.argv[1]))
        spec = CollectionSpec("t_torn", 16, "L2")
        store.ensure_collection(spec)
        if sys.argv[2] == "write":
            vecs = np.random.default_rng(0).normal(size=(3000, 16)).astype("float32")
            store.upsert("t_torn", partition="d", ids=[f"id{i}" for i in range(3000)], vectors=vecs)
        print(store.count("t_torn", partition="d"))
        store.close()
        """
    )

    def run(mode: str) -> str:
        out = subprocess.run([sys.executable, "-c", script, str(db), mode], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.strip().splitlines()[-1]

    assert run("write") == "3000"
    assert run("read") == "3000"  # a fresh process loads the collection and writes index sidecars
    sidecars = list(db.glob("collections/t_torn/partitions/*/indexes/*.idx"))
    assert sidecars, "Milvus Lite wrote no index sidecar; the layout changed"
    for sidecar in sidecars:
        data = sidecar.read_bytes()
        sidecar.write_bytes(data[: len(data) // 2])  # what a SIGKILL mid-write leaves
    assert run("read") == "3000"
