"""Typed filters and sorts compiled to parameterised ClickHouse SQL over one dataset's datapoints.

A query reads the ``evaluations`` rows of one inference set (or of ``""``, every frame without
predictions): the frame's current fields, its latest label and the set's prediction, kept current
by the ingest service. The fields that depend on the request (predicted class at a confidence
threshold, correctness, a baseline's prediction) are derived in the query. Every value a client
sends travels as a server-side parameter; field names are looked up in a fixed table, never
pasted; and every subquery is restricted to the caller's project.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shoal.common.errors import InvalidArgument
from shoal.common.timeutil import time_in_range
from shoal.common.v1 import common_pb2

_META_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class FieldDef:
    sql: str
    #: "string", "number", "int", "bool", "timestamp"
    kind: str
    #: the view needs the inference set for it
    needs_inference: bool = False
    #: may be NULL (sorting by it leaves those rows out)
    nullable: bool = False


FIELDS: dict[str, FieldDef] = {
    "frame_id": FieldDef("frame_id", "string"),
    "split": FieldDef("split", "string"),
    "media_type": FieldDef("media_type", "string"),
    "capture_time": FieldDef("capture_time", "timestamp", nullable=True),
    "label_class": FieldDef("label_class", "int", nullable=True),
    "labeled": FieldDef("label_class IS NOT NULL", "bool"),
    "predicted_class": FieldDef("predicted_class", "int", needs_inference=True, nullable=True),
    "confidence": FieldDef("confidence", "number", needs_inference=True, nullable=True),
    "loss": FieldDef("loss", "number", needs_inference=True, nullable=True),
    "margin": FieldDef("margin", "number", needs_inference=True, nullable=True),
    "correct": FieldDef("correct", "bool", needs_inference=True, nullable=True),
}
#: with a baseline inference set
BASELINE_FIELDS: dict[str, FieldDef] = {
    "baseline_predicted_class": FieldDef("baseline_predicted_class", "int", needs_inference=True, nullable=True),
    "baseline_correct": FieldDef("baseline_correct", "bool", needs_inference=True, nullable=True),
    "change": FieldDef("change", "string", needs_inference=True, nullable=True),
}
SORTABLE = ("loss", "confidence", "margin", "capture_time", "frame_id", "label_class", "predicted_class")
#: the column holding each type of metadata value, by type
METADATA_MAPS = {"string": "meta_str", "number": "meta_num", "bool": "meta_bool", "timestamp": "meta_time"}
#: a metadata key's type, when frames hold it as several (written before each key had one type): the first of these
METADATA_KINDS = ("number", "string", "timestamp", "bool")
_CH_TYPE = {
    "string": "String",
    "number": "Float64",
    "int": "Int64",
    "bool": "UInt8",
    "timestamp": "DateTime64(3, 'UTC')",
}


@dataclass
class Params:
    """Collects server-side parameters: each distinct value of a type gets one ``{pN:Type}``
    placeholder (conditions naming the same key or value share it, so a query's parameters grow
    with the distinct values, not with every mention)."""

    values: dict[str, Any] = field(default_factory=dict)
    _names: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def add(self, value: Any, ch_type: str) -> str:
        key = (ch_type, type(value).__name__, repr(value)) if isinstance(value, str | int | float) else None
        name = self._names.get(key) if key is not None else None
        if name is None:
            name = f"p{len(self.values)}"
            self.values[name] = value
            if key is not None:
                self._names[key] = name
        return f"{{{name}:{ch_type}}}"


@dataclass(frozen=True)
class View:
    """What a query reads: one dataset, optionally one inference set's predictions."""

    project: str
    dataset: str
    inference_set: str = ""
    #: class ids in the order of probability vectors
    ontology: tuple[int, ...] = ()
    class_names: Mapping[str, int] = field(default_factory=dict)
    confidence_threshold: float = 0.0
    #: another inference set of the dataset, for the comparison fields
    baseline_inference_set: str = ""
    #: without an inference set: the set whose rows describe the frames (see
    #: :func:`shoal.common.data.evaluations.frame_rows_set`)
    frames_from: str = ""


#: the columns :func:`view_sql` reads of each row (with ``confidence``; a large set's grid listings keep them,
#: :mod:`shoal.analysis.grid_orders`)
ROW_COLUMNS = (
    "frame_id", "split", "media_uri", "media_type", "capture_time", "meta_str", "meta_num", "meta_bool", "meta_time",
    "label_class", "pred_raw", "probs", "loss", "margin", "true_rank",
)  # fmt: skip
_PREDICTION_COLUMNS = ("pred_raw", "probs", "loss", "margin", "true_rank")
#: to append to every statement that reads :func:`view_sql` (unmatched joins give NULL, not 0)
SETTINGS = " SETTINGS join_use_nulls = 1"
#: the tables a statement over :func:`view_sql` and :func:`compile_filter` reads (an answer kept in
#: :class:`shoal.common.data.answers.AnswerCache` holds while these are unchanged)
VIEW_TABLES = ("evaluations", "evaluations_by_cell", "segment_members")
#: what a page of the example grid shows of each frame of :func:`view_sql` (``QueryDatapoints``, and
#: the listings a large set keeps of its sorts)
PAGE_COLUMNS = (
    "frame_id, split, media_uri, label_class, predicted_class, confidence, loss, margin, probs,"
    " meta_str, meta_num, meta_bool, meta_time"
)


def view_sql(
    view: View,
    params: Params,
    cell: tuple[int | None, int | None] | None = None,
    listing: tuple[str, str] | None = None,
) -> str:
    """A subquery with one row per frame of the dataset and every field of :data:`FIELDS`, read
    from the ``evaluations`` table the ingest service keeps current; statements reading it end
    with :data:`SETTINGS`. With a ``cell`` (a label class, and a predicted class; either None for any: see
    :func:`cell_of`) only that cell's frames, read from ``evaluations_by_cell``: the caller's filter
    must select no frame outside it. With a ``listing`` (a build and a listing's name), the rows of
    that listing of the set's grid, with their place in it as ``_key``
    (:mod:`shoal.analysis.grid_orders`); of a view with a baseline, a listing of the set's rows with
    the baseline's prediction beside each (:mod:`shoal.analysis.grid_compare`), read in place of the
    join of the two sets."""
    project = params.add(view.project, "String")
    dataset = params.add(view.dataset, "String")
    inference_set = params.add(view.inference_set, "String")
    threshold = params.add(float(view.confidence_threshold), "Float64")
    ontology = params.add(list(view.ontology), "Array(Int32)")
    if view.inference_set:
        columns = f"{', '.join(ROW_COLUMNS)}, toFloat64(confidence) AS confidence"
    else:  # the frames alone: another set's rows, without their predictions
        inference_set = params.add(view.frames_from, "String")
        columns = (
            f"{', '.join(c for c in ROW_COLUMNS if c not in _PREDICTION_COLUMNS)},"
            " CAST(NULL AS Nullable(Int32)) AS pred_raw, CAST([] AS Array(Float32)) AS probs,"
            " CAST(NULL AS Nullable(Float64)) AS loss, CAST(NULL AS Nullable(Float64)) AS margin,"
            " CAST(NULL AS Nullable(UInt16)) AS true_rank, CAST(NULL AS Nullable(Float64)) AS confidence"
        )
    table, in_cell = "evaluations", ""
    if cell is not None and not view.baseline_inference_set:
        table = "evaluations_by_cell"
        if cell[0] is not None:
            in_cell = f" AND label_key = {params.add(cell[0], 'Int32')}"
        if cell[1] is not None and view.inference_set:
            in_cell += f" AND pred_key = {params.add(cell[1], 'Int32')}"
    rows = (
        f"SELECT {columns} FROM {table} FINAL WHERE project = {project} AND inference_set = {inference_set}"
        f" AND dataset = {dataset}{in_cell}"
    )
    if listing is not None:
        if not view.inference_set:
            raise ValueError("a grid listing holds an inference set's own rows")
        # a build's rows are written once (or the same again, by a second replica: the reader leaves them out)
        compared = ", base_pred_raw, base_confidence" if view.baseline_inference_set else ""
        rows = (
            f"SELECT {', '.join(ROW_COLUMNS)}, confidence, width, height, key AS _key{compared} FROM grid_listings"
            f" WHERE project = {project} AND inference_set = {inference_set} AND dataset = {dataset}"
            f" AND build = {params.add(listing[0], 'String')} AND listing = {params.add(listing[1], 'String')}"
        )
    if view.baseline_inference_set and listing is None:
        baseline = params.add(view.baseline_inference_set, "String")
        base_rows = (
            "SELECT frame_id, pred_raw, toFloat64(confidence) AS confidence FROM evaluations FINAL"
            f" WHERE project = {project} AND inference_set = {baseline} AND dataset = {dataset}"
        )
        rows = (
            f"SELECT {', '.join(f'r.{c} AS {c}' for c in (*ROW_COLUMNS, 'confidence'))},"
            " b.pred_raw AS base_pred_raw, b.confidence AS base_confidence"
            f" FROM ({rows}) AS r LEFT JOIN ({base_rows}) AS b ON b.frame_id = r.frame_id"
        )
    derived = (
        "SELECT *,"
        f" if(pred_raw IS NULL, NULL, if(confidence >= {threshold}, pred_raw, -1)) AS predicted_class,"
        f" indexOf({ontology}, label_class) AS true_pos,"
        " if(true_pos > 0 AND length(probs) >= true_pos, toFloat64(probs[true_pos]), NULL) AS p_true,"
        f" {CORRECT} AS correct FROM ({rows})"
    )
    if not view.baseline_inference_set:
        return derived
    return (
        "SELECT *,"
        f" if(base_pred_raw IS NULL, NULL, if(base_confidence >= {threshold}, base_pred_raw, -1))"
        f" AS baseline_predicted_class, {BASELINE_CORRECT} AS baseline_correct, {CHANGE} AS change"
        f" FROM ({derived})"
    )


#: a row's correctness, of its label and its prediction (``predicted_class``, at the view's threshold)
CORRECT = "if(label_class IS NULL OR pred_raw IS NULL, NULL, label_class = predicted_class)"
#: the same of the baseline's prediction, and the change between the two
BASELINE_CORRECT = "if(label_class IS NULL OR base_pred_raw IS NULL, NULL, label_class = baseline_predicted_class)"
CHANGE = (
    "multiIf(correct IS NULL OR baseline_correct IS NULL, NULL, correct AND NOT baseline_correct, 'improved',"
    " baseline_correct AND NOT correct, 'regressed', 'unchanged')"
)


def cell_of(flt: common_pb2.Filter, view: View) -> tuple[int, int | None] | None:
    """The confusion cell a filter keeps to, if it does: the class its ``label_class`` equals, and
    the class its ``predicted_class`` equals (None unless a class, not -1); None when it names no
    label class (or names it wrongly: compiling the filter says how)."""
    label = predicted = None
    for c in flt.all:
        if c.negate or c.WhichOneof("op") != "equals" or c.field not in ("label_class", "predicted_class"):
            continue
        try:
            value = _value(c.equals, "int", "", view)
        except InvalidArgument:
            return None
        if c.field == "label_class":
            label = value
        elif value >= 0:
            predicted = value
    return None if label is None else (label, predicted)


# -- filters -----------------------------------------------------------------------------------


def _value(v: common_pb2.Value, kind: str, where: str, view: View) -> Any:
    """A condition's value as the field's type; refuses a value of another kind."""
    got = v.WhichOneof("kind")
    if got is None:
        raise InvalidArgument("value is not set", field=where)
    if kind == "int" and got == "string_value" and view.class_names:
        name = v.string_value
        if name not in view.class_names:
            raise InvalidArgument(f"unknown class {name!r}", field=where)
        return view.class_names[name]
    expected = {"string": "string_value", "number": "number_value", "int": "number_value",
                "bool": "bool_value", "timestamp": "timestamp_value"}[kind]  # fmt: skip
    if got != expected:
        raise InvalidArgument(f"expects a {kind} value, got {got.removesuffix('_value')}", field=where)
    if got == "string_value":
        return v.string_value
    if got == "bool_value":
        return int(v.bool_value)
    if got == "timestamp_value":
        return time_in_range(v.timestamp_value, where)
    number = v.number_value
    if not math.isfinite(number):
        raise InvalidArgument(f"must be finite, got {number}", field=where)
    if kind == "int":
        if number != int(number) or abs(number) > 2**31:
            raise InvalidArgument(f"expects a whole number of 32 bits, got {number}", field=where)
        return int(number)
    return number


def condition_kind(c: common_pb2.Condition) -> str | None:
    """The value kind a metadata condition names (None for ``exists``)."""
    op = c.WhichOneof("op")
    if op == "equals":
        values = [c.equals]
    elif op == "in":
        values = list(getattr(c, "in").values)
    elif op == "range":
        values = [v for v in (c.range.min, c.range.max) if v.WhichOneof("kind")]
    else:
        return None
    kinds = {v.WhichOneof("kind") for v in values}
    if len(kinds) != 1 or None in kinds:
        return "invalid"
    return {"string_value": "string", "number_value": "number", "bool_value": "bool",
            "timestamp_value": "timestamp"}[kinds.pop()]  # fmt: skip


def metadata_key(name: str, where: str) -> str:
    key = name.removeprefix("metadata.")
    if not _META_KEY.match(key):
        raise InvalidArgument(f"metadata key {key!r} must match {_META_KEY.pattern}", field=where)
    return key


def compile_condition(c: common_pb2.Condition, view: View, params: Params, where: str) -> str:
    op = c.WhichOneof("op")
    if op is None:
        raise InvalidArgument("needs one of equals, in, range or exists", field=where)
    name = c.field
    if name == "segment":
        return _segment_condition(c, view, params, where)
    if name.startswith("metadata."):
        key = params.add(metadata_key(name, f"{where}.field"), "String")
        kind = condition_kind(c)
        if kind == "invalid":
            raise InvalidArgument("values of one metadata condition must share one type", field=f"{where}.{op}")
        if kind is None:  # exists: in any of the typed maps
            sql = " OR ".join(f"mapContains({m}, {key})" for m in METADATA_MAPS.values())
            sql = f"({sql})" if c.exists else f"NOT ({sql})"
            return f"NOT ({sql})" if c.negate else sql
        column = METADATA_MAPS[kind]
        fdef = FieldDef(f"{column}[{key}]", kind)
        present = f"mapContains({column}, {key})"
    else:
        known = FIELDS.get(name) or (BASELINE_FIELDS.get(name) if view.baseline_inference_set else None)
        if known is None:
            raise InvalidArgument(
                f"unknown field {name!r}; fields: {', '.join(FIELDS)}, segment, metadata.<key>"
                + (f", {', '.join(BASELINE_FIELDS)}" if view.baseline_inference_set else ""),
                field=f"{where}.field",
            )
        if known.needs_inference and not view.inference_set:
            raise InvalidArgument(f"field {name!r} needs an inference set", field=f"{where}.field")
        fdef = known
        present = f"{fdef.sql} IS NOT NULL" if fdef.nullable else "1"
    ch = _CH_TYPE[fdef.kind]
    if op == "exists":
        sql = present if c.exists else f"NOT ({present})"
    elif op == "equals":
        sql = f"{present} AND {fdef.sql} = {params.add(_value(c.equals, fdef.kind, f'{where}.equals', view), ch)}"
    elif op == "in":
        values = [_value(v, fdef.kind, f"{where}.in.values[{i}]", view) for i, v in enumerate(getattr(c, "in").values)]
        if not values:
            raise InvalidArgument("needs at least one value", field=f"{where}.in")
        sql = f"{present} AND {fdef.sql} IN {params.add(values, f'Array({ch})')}"
    else:
        r = c.range
        parts = [present]
        if r.min.WhichOneof("kind"):
            lo = params.add(_value(r.min, fdef.kind, f"{where}.range.min", view), ch)
            parts.append(f"{fdef.sql} {'>' if r.min_exclusive else '>='} {lo}")
        if r.max.WhichOneof("kind"):
            hi = params.add(_value(r.max, fdef.kind, f"{where}.range.max", view), ch)
            parts.append(f"{fdef.sql} {'<' if r.max_exclusive else '<='} {hi}")
        if len(parts) == 1:
            raise InvalidArgument("needs min or max", field=f"{where}.range")
        sql = " AND ".join(parts)
    if fdef.nullable:  # a condition on a missing value is false, and its negation true
        sql = f"ifNull(({sql}), 0)"
    else:
        sql = f"({sql})"
    return f"NOT {sql}" if c.negate else sql


def _segment_condition(c: common_pb2.Condition, view: View, params: Params, where: str) -> str:
    """Membership in one of the named segments of the dataset."""
    op = c.WhichOneof("op")
    if op == "equals":
        names = [_value(c.equals, "string", f"{where}.equals", view)]
    elif op == "in":
        names = [_value(v, "string", f"{where}.in.values[{i}]", view) for i, v in enumerate(getattr(c, "in").values)]
    else:
        raise InvalidArgument("segment takes equals or in (segment names)", field=f"{where}.{op}")
    members = (
        "SELECT frame_id FROM segment_members FINAL"
        f" WHERE project = {params.add(view.project, 'String')} AND dataset = {params.add(view.dataset, 'String')}"
        f" AND segment IN {params.add(names, 'Array(String)')} AND removed = 0"
    )
    sql = f"frame_id IN ({members})"
    return f"NOT ({sql})" if c.negate else sql


def compile_filter(f: common_pb2.Filter, view: View, params: Params, where: str = "filter") -> str:
    """The WHERE clause of a filter (``1`` for an empty one)."""
    parts = [compile_condition(c, view, params, f"{where}.all[{i}]") for i, c in enumerate(f.all)]
    return " AND ".join(parts) if parts else "1"


# -- sorting and keyset paging -----------------------------------------------------------------


@dataclass(frozen=True)
class Sort:
    sql: str
    kind: str
    descending: bool
    nullable: bool


def compile_sort(keys: Sequence[Any], view: View, metadata_kinds: Mapping[str, str], params: Params) -> list[Sort]:
    """The sort keys, then frame_id as the tie-break that makes every position unique."""
    out: list[Sort] = []
    for i, k in enumerate(keys):
        where = f"sort[{i}].field"
        if k.field.startswith("metadata."):
            key = metadata_key(k.field, where)
            kind = metadata_kinds.get(key)
            if kind is None:
                raise InvalidArgument(f"no frame of the dataset has metadata key {key!r}", field=where)
            column = METADATA_MAPS[kind]
            p = params.add(key, "String")
            out.append(Sort(f"if(mapContains({column}, {p}), {column}[{p}], NULL)", kind, k.descending, True))
            continue
        if k.field not in SORTABLE:
            raise InvalidArgument(f"cannot sort by {k.field!r}; sortable: {', '.join(SORTABLE)}, metadata.<key>",
                                  field=where)  # fmt: skip
        fdef = FIELDS[k.field]
        if fdef.needs_inference and not view.inference_set:
            raise InvalidArgument(f"sorting by {k.field!r} needs an inference set", field=where)
        out.append(Sort(fdef.sql, fdef.kind, k.descending, fdef.nullable))
    if not any(s.sql == "frame_id" for s in out):
        out.append(Sort("frame_id", "string", False, False))
    return out


def order_by(sorts: Sequence[Sort]) -> str:
    return ", ".join(f"{s.sql} {'DESC' if s.descending else 'ASC'}" for s in sorts)


def presence(sorts: Sequence[Sort]) -> str:
    """Rows lacking a sort key's value are left out."""
    parts = [f"{s.sql} IS NOT NULL" for s in sorts if s.nullable]
    return " AND ".join(parts) if parts else "1"


def after(sorts: Sequence[Sort], last: Sequence[Any], params: Params) -> str:
    """Rows strictly after ``last`` in the sort order (lexicographic over the keys)."""
    ors = []
    for i, s in enumerate(sorts):
        ands = [f"{p.sql} = {params.add(v, _CH_TYPE[p.kind])}" for p, v in zip(sorts[:i], last[:i], strict=True)]
        op = "<" if s.descending else ">"
        ands.append(f"{s.sql} {op} {params.add(last[i], _CH_TYPE[s.kind])}")
        ors.append("(" + " AND ".join(ands) + ")")
    return "(" + " OR ".join(ors) + ")"


def encode_cursor(values: Sequence[Any], scope: str) -> str:
    raw = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    data = json.dumps({"k": raw, "f": _fingerprint(scope)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def decode_cursor(token: str, sorts: Sequence[Sort], scope: str) -> list[Any] | None:
    if not token:
        return None
    try:
        raw = json.loads(base64.urlsafe_b64decode(token.encode() + b"==="))
        values, fp = list(raw["k"]), str(raw["f"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument("is not a token this server issued", field="page.page_token") from exc
    if fp != _fingerprint(scope) or len(values) != len(sorts):
        raise InvalidArgument("belongs to a different query", field="page.page_token")
    out = []
    for s, v in zip(sorts, values, strict=True):
        if s.kind == "timestamp" and isinstance(v, str):
            v = datetime.fromisoformat(v)
        out.append(v)
    return out


def _fingerprint(scope: str) -> str:
    return hashlib.sha256(scope.encode()).hexdigest()[:16]
