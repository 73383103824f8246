"""Datasets (labeled sets and unlabeled pools, with splits) and inference sets of a project.

Transport-free, like :mod:`shoal.common.data.projects`: dataclasses in and out, typed errors.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from shoal.common.data.projects import NAME_RE, ProjectCatalog
from shoal.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from shoal.common.pagination import Page
from shoal.common.stores.metrics import MetricsStore, Migration
from shoal.common.timeutil import as_utc, now_ms

DATASET_KINDS = ("LABELED", "UNLABELED_POOL")

MIGRATIONS = (
    Migration(
        component="ingest",
        version=2,
        name="datasets and inference sets",
        statements=(
            "CREATE TABLE IF NOT EXISTS datasets ("
            " project String, name String, kind LowCardinality(String), splits Array(String), description String,"
            " create_time DateTime64(3, 'UTC'), update_time DateTime64(3, 'UTC'), revision UInt64, version UInt64)"
            " ENGINE = ReplacingMergeTree(version) ORDER BY (project, name)",
            "CREATE TABLE IF NOT EXISTS inference_sets ("
            " project String, name String, dataset String, model_name String, model_version String,"
            " description String, create_time DateTime64(3, 'UTC'), version UInt64)"
            " ENGINE = ReplacingMergeTree(version) ORDER BY (project, name)",
        ),
    ),
)


@dataclass(frozen=True)
class Dataset:
    project: str
    name: str
    kind: str
    splits: tuple[str, ...] = ()
    description: str = ""
    create_time: datetime | None = None
    update_time: datetime | None = None
    revision: int = 0


@dataclass(frozen=True)
class InferenceSet:
    project: str
    name: str
    dataset: str
    model_name: str
    model_version: str
    description: str = ""
    create_time: datetime | None = None


def validate_dataset(d: Dataset, *, prefix: str = "dataset") -> None:
    if not NAME_RE.match(d.name):
        raise InvalidArgument(
            f"{d.name!r} is not a dataset name: lower-case letters, digits, '-' and '_', starting with a letter",
            field=f"{prefix}.name",
        )
    if d.kind not in DATASET_KINDS:
        raise InvalidArgument(f"must be one of {', '.join(DATASET_KINDS)}", field=f"{prefix}.kind")
    seen: set[str] = set()
    for i, split in enumerate(d.splits):
        if not NAME_RE.match(split):
            raise InvalidArgument(f"{split!r} is not a split name", field=f"{prefix}.splits[{i}]")
        if split in seen:
            raise InvalidArgument(f"split {split!r} appears twice", field=f"{prefix}.splits[{i}]")
        seen.add(split)
    if len(d.description) > 10_000:
        raise InvalidArgument("is longer than 10000 characters", field=f"{prefix}.description")


_DS_COLUMNS = ("project", "name", "kind", "splits", "description", "create_time", "update_time", "revision", "version")
_IS_COLUMNS = ("project", "name", "dataset", "model_name", "model_version", "description", "create_time", "version")


class DatasetCatalog:
    def __init__(self, metrics: MetricsStore, projects: ProjectCatalog) -> None:
        self.metrics = metrics
        self.projects = projects
        self._lock = threading.Lock()

    # -- datasets ---------------------------------------------------------------------------
    def _write(self, d: Dataset) -> Dataset:
        self.metrics.insert(
            "datasets",
            [
                [
                    d.project,
                    d.name,
                    d.kind,
                    list(d.splits),
                    d.description,
                    d.create_time,
                    d.update_time,
                    d.revision,
                    time.time_ns(),
                ]
            ],
            _DS_COLUMNS,
        )
        return d

    def create(self, dataset: Dataset) -> Dataset:
        self.projects.get(dataset.project)
        validate_dataset(dataset)
        with self._lock:
            if self.find(dataset.project, dataset.name) is not None:
                raise AlreadyExists(
                    f"dataset {dataset.name!r} already exists in project {dataset.project!r}", field="dataset.name"
                )
            now = now_ms()
            return self._write(replace(dataset, create_time=now, update_time=now, revision=1))

    def find(self, project: str, name: str) -> Dataset | None:
        rows = self.metrics.query(
            "SELECT " + ", ".join(_DS_COLUMNS[:-1]) + " FROM datasets FINAL"
            " WHERE project = {project:String} AND name = {name:String}",
            {"project": project, "name": name},
        ).rows
        return _dataset(rows[0]) if rows else None

    def get(self, project: str, name: str) -> Dataset:
        if not name:
            raise InvalidArgument("is empty", field="dataset")
        d = self.find(project, name)
        if d is None:
            raise NotFound(f"dataset {name!r} does not exist in project {project!r}", field="dataset")
        return d

    def list(self, project: str, *, page: Page) -> tuple[list[Dataset], int]:
        params = {"project": project}
        total = int(
            self.metrics.query("SELECT count() FROM datasets FINAL WHERE project = {project:String}", params).scalar()
            or 0
        )
        rows = self.metrics.query(
            "SELECT " + ", ".join(_DS_COLUMNS[:-1]) + " FROM datasets FINAL WHERE project = {project:String}"
            " ORDER BY name LIMIT {limit:UInt32} OFFSET {offset:UInt64}",
            {**params, "limit": page.size, "offset": page.offset},
        ).rows
        return [_dataset(r) for r in rows], total

    def update(self, project: str, name: str, update: Dataset, paths: Sequence[str]) -> Dataset:
        allowed = ("description", "splits")
        if not paths:
            raise InvalidArgument(f"name at least one of {', '.join(allowed)}", field="update_mask")
        for path in paths:
            if path not in allowed:
                raise InvalidArgument(f"{path!r} cannot be updated; allowed: {', '.join(allowed)}", field="update_mask")
        with self._lock:
            current = self.get(project, name)
            changes: dict[str, object] = {}
            if "description" in paths:
                changes["description"] = update.description
            if "splits" in paths:
                missing = [s for s in current.splits if s not in update.splits]
                if missing:
                    raise FailedPrecondition(
                        f"split {missing[0]!r} cannot be removed: frames may carry it", field="update.splits"
                    )
                changes["splits"] = tuple(update.splits)
            new = replace(current, **changes, update_time=now_ms(), revision=current.revision + 1)  # type: ignore[arg-type]
            validate_dataset(new, prefix="update")
            return self._write(new)

    # -- inference sets ---------------------------------------------------------------------
    def create_inference_set(self, s: InferenceSet) -> InferenceSet:
        self.projects.get(s.project)
        if not NAME_RE.match(s.name):
            raise InvalidArgument(f"{s.name!r} is not a valid inference set name", field="inference_set.name")
        self.get(s.project, s.dataset)
        if not s.model_name or not s.model_version:
            raise InvalidArgument(
                "model_name and model_version are required: comparisons and gates refer to them",
                field="inference_set.model_name" if not s.model_name else "inference_set.model_version",
            )
        with self._lock:
            if self.find_inference_set(s.project, s.name) is not None:
                raise AlreadyExists(f"inference set {s.name!r} already exists", field="inference_set.name")
            return self._write_inference_set(replace(s, create_time=now_ms()))

    def _write_inference_set(self, s: InferenceSet) -> InferenceSet:
        row = [
            s.project,
            s.name,
            s.dataset,
            s.model_name,
            s.model_version,
            s.description,
            s.create_time,
            time.time_ns(),
        ]
        self.metrics.insert("inference_sets", [row], _IS_COLUMNS)
        return s

    def update_inference_set(self, project: str, name: str, description: str, paths: Sequence[str]) -> InferenceSet:
        if list(paths) != ["description"]:
            raise InvalidArgument(
                "only description can be updated: the dataset and the model lineage never change", field="update_mask"
            )
        if len(description) > 10_000:
            raise InvalidArgument("is longer than 10000 characters", field="update.description")
        with self._lock:
            return self._write_inference_set(replace(self.get_inference_set(project, name), description=description))

    def find_inference_set(self, project: str, name: str) -> InferenceSet | None:
        rows = self.metrics.query(
            "SELECT " + ", ".join(_IS_COLUMNS[:-1]) + " FROM inference_sets FINAL"
            " WHERE project = {project:String} AND name = {name:String}",
            {"project": project, "name": name},
        ).rows
        return _inference_set(rows[0]) if rows else None

    def get_inference_set(
        self, project: str, name: str, *, dataset: str = "", field: str = "inference_set"
    ) -> InferenceSet:
        """The inference set; with ``dataset``, it must belong to that dataset. Errors name ``field``."""
        if not name:
            raise InvalidArgument("is empty", field=field)
        s = self.find_inference_set(project, name)
        if s is None:
            raise NotFound(f"inference set {name!r} does not exist in project {project!r}", field=field)
        if dataset and s.dataset != dataset:
            raise InvalidArgument(f"inference set {name!r} belongs to dataset {s.dataset!r}, not {dataset!r}",
                                  field=field)  # fmt: skip
        return s

    def list_inference_sets(self, project: str, *, dataset: str = "", page: Page) -> tuple[list[InferenceSet], int]:
        where = "project = {project:String}"
        params: dict[str, object] = {"project": project}
        if dataset:
            where += " AND dataset = {dataset:String}"
            params["dataset"] = dataset
        total = int(self.metrics.query(f"SELECT count() FROM inference_sets FINAL WHERE {where}", params).scalar() or 0)
        rows = self.metrics.query(
            "SELECT " + ", ".join(_IS_COLUMNS[:-1]) + f" FROM inference_sets FINAL WHERE {where}"
            " ORDER BY name LIMIT {limit:UInt32} OFFSET {offset:UInt64}",
            {**params, "limit": page.size, "offset": page.offset},
        ).rows
        return [_inference_set(r) for r in rows], total


def _dataset(row: Sequence[object]) -> Dataset:
    project, name, kind, splits, desc, ct, ut, rev = row
    return Dataset(
        project=str(project),
        name=str(name),
        kind=str(kind),
        splits=tuple(splits),  # type: ignore[call-overload]
        description=str(desc),
        create_time=as_utc(ct),
        update_time=as_utc(ut),
        revision=int(rev),  # type: ignore[call-overload]
    )


def _inference_set(row: Sequence[object]) -> InferenceSet:
    project, name, dataset, model, version, desc, ct = row
    return InferenceSet(str(project), str(name), str(dataset), str(model), str(version), str(desc), as_utc(ct))


def existing_frames(metrics: MetricsStore, project: str, dataset: str, frame_ids: Sequence[str]) -> set[str]:
    """Which of these frame ids the dataset holds."""
    rows = metrics.query_ids(
        "SELECT DISTINCT frame_id FROM frames WHERE project = {project:String} AND dataset = {dataset:String}"
        " AND frame_id IN {ids:Array(String)}",
        {"project": project, "dataset": dataset},
        "ids",
        frame_ids,
    )
    return {str(r[0]) for r in rows}


def frame_media(metrics: MetricsStore, project: str, dataset: str, frame_ids: list[str]) -> dict[str, tuple[str, str]]:
    """Media URI and split of each of these frames."""
    rows = metrics.query_ids(
        "SELECT frame_id, media_uri, split FROM frames FINAL WHERE project = {project:String}"
        " AND dataset = {dataset:String} AND frame_id IN {ids:Array(String)}",
        {"project": project, "dataset": dataset},
        "ids",
        frame_ids,
    )
    return {str(f): (str(uri), str(split)) for f, uri, split in rows}
