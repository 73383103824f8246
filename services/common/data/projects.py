"""The project catalog: projects, their class ontology and embedding spaces.

Transport-free: takes and returns the dataclasses below, raises typed errors. Stored in the
``projects`` table (ReplacingMergeTree by write version: the latest write of a name wins).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from shoal.common import limits
from shoal.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from shoal.common.pagination import Page
from shoal.common.stores.metrics import MetricsStore, Migration
from shoal.common.timeutil import as_utc, now_ms

TASK_TYPES = (
    "CLASSIFICATION",
    "OBJECT_DETECTION_2D",
    "CUBOIDS_3D",
    "KEYPOINTS",
    "SEGMENTATION",
    "INSTANCE_SEGMENTATION",
    "MULTI_LABEL",
    "SOUND_EVENTS",
)
#: segmentation class ids fit the 16 bits of a class map, below its "no class" value
MAX_SEGMENTATION_CLASS_ID = 65534
COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
#: the task types whose labels and predictions are objects (boxes, masks, keypoints, cuboids)
OBJECT_TASKS = ("OBJECT_DETECTION_2D", "INSTANCE_SEGMENTATION", "KEYPOINTS", "CUBOIDS_3D")
#: keypoints a class may declare
MAX_KEYPOINTS = 100
#: a keypoint's sigma when its class gives none
DEFAULT_SIGMA = 0.05
METRICS = ("COSINE", "L2", "INNER_PRODUCT")
LEVELS = ("FRAME", "OBJECT")
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")

MIGRATIONS = (
    Migration(
        component="ingest",
        version=1,
        name="projects",
        statements=(
            "CREATE TABLE IF NOT EXISTS projects ("
            " name String, display_name String, description String, task_type LowCardinality(String),"
            " classes Array(Tuple(id Int32, name String)),"
            " embedding_spaces Array(Tuple(name String, dimension UInt32, metric String, level String,"
            " model_name String, model_version String)),"
            " create_time DateTime64(3, 'UTC'), update_time DateTime64(3, 'UTC'), revision UInt64,"
            " version UInt64)"
            " ENGINE = ReplacingMergeTree(version) ORDER BY name",
        ),
    ),
    Migration(
        component="ingest",
        version=10,
        name="keypoints of a project's classes",
        statements=(
            # one entry per class that declares keypoints; skeleton edges as (a, b) positions
            "ALTER TABLE projects ADD COLUMN IF NOT EXISTS class_keypoints Array(Tuple(id Int32,"
            " names Array(String), skeleton Array(Tuple(UInt16, UInt16)), sigmas Array(Float64)))",
        ),
    ),
    Migration(
        component="ingest",
        version=13,
        name="colours of a segmentation project's classes",
        statements=("ALTER TABLE projects ADD COLUMN IF NOT EXISTS class_colors Map(Int32, String)",),
    ),
)


@dataclass(frozen=True)
class ClassDef:
    id: int
    name: str
    #: keypoint projects: the class's keypoints in the order its objects give them
    keypoints: tuple[str, ...] = ()
    #: lines drawn between keypoints (positions in ``keypoints``)
    skeleton: tuple[tuple[int, int], ...] = ()
    #: COCO's per-keypoint sigmas; empty: :data:`DEFAULT_SIGMA` each
    keypoint_sigmas: tuple[float, ...] = ()
    #: segmentation projects: the class's colour in RGB label images, ``#rrggbb``
    color: str = ""

    @property
    def sigmas(self) -> tuple[float, ...]:
        """The sigma of each keypoint, as the metrics use it."""
        return self.keypoint_sigmas or (DEFAULT_SIGMA,) * len(self.keypoints)


@dataclass(frozen=True)
class EmbeddingSpace:
    name: str
    dimension: int
    metric: str
    level: str
    model_name: str
    model_version: str


@dataclass(frozen=True)
class Project:
    name: str
    task_type: str
    display_name: str = ""
    description: str = ""
    classes: tuple[ClassDef, ...] = ()
    embedding_spaces: tuple[EmbeddingSpace, ...] = ()
    create_time: datetime | None = None
    update_time: datetime | None = None
    revision: int = 0


UPDATABLE = ("display_name", "description", "classes", "embedding_spaces")


def validate_project(p: Project, *, prefix: str = "project") -> None:
    if not NAME_RE.match(p.name):
        raise InvalidArgument(
            f"{p.name!r} is not a project name: use lower-case letters, digits, '-' and '_', "
            "starting with a letter, at most 63 characters",
            field=f"{prefix}.name",
        )
    if p.task_type not in TASK_TYPES:
        raise InvalidArgument(f"must be one of {', '.join(TASK_TYPES)}", field=f"{prefix}.task_type")
    if len(p.display_name) > 200:
        raise InvalidArgument("is longer than 200 characters", field=f"{prefix}.display_name")
    if len(p.description) > 10_000:
        raise InvalidArgument("is longer than 10000 characters", field=f"{prefix}.description")
    if len(p.classes) > limits.MAX_CLASSES:
        raise InvalidArgument(
            f"{len(p.classes):,} classes is more than the {limits.MAX_CLASSES:,} a project may have",
            field=f"{prefix}.classes",
        )
    if len(p.embedding_spaces) > limits.MAX_SMALL_LIST:
        raise InvalidArgument(
            f"{len(p.embedding_spaces)} embedding spaces is more than the {limits.MAX_SMALL_LIST} a project may have",
            field=f"{prefix}.embedding_spaces",
        )
    validate_classes(p.classes, prefix=prefix, task_type=p.task_type)
    validate_spaces(p.embedding_spaces, prefix=prefix)


def validate_classes(classes: Sequence[ClassDef], *, prefix: str, task_type: str = "") -> None:
    ids: set[int] = set()
    names: set[str] = set()
    colors: dict[str, int] = {}
    for i, c in enumerate(classes):
        f = f"{prefix}.classes[{i}]"
        validate_keypoints(c, f, task_type)
        top = MAX_SEGMENTATION_CLASS_ID if task_type == "SEGMENTATION" else 1_000_000
        if c.id < 0 or c.id > top:
            raise InvalidArgument(f"id must be in [0, {top}], got {c.id}", field=f"{f}.id")
        if c.color:
            if task_type != "SEGMENTATION":
                raise InvalidArgument("only a SEGMENTATION project's classes have a color", field=f"{f}.color")
            if not COLOR_RE.match(c.color):
                raise InvalidArgument(f"a colour is written #rrggbb, not {c.color!r}", field=f"{f}.color")
            if c.color.lower() in colors:
                raise InvalidArgument(f"colour {c.color} is class {colors[c.color.lower()]}'s too", field=f"{f}.color")
            colors[c.color.lower()] = c.id
        if not c.name or len(c.name) > 200 or c.name != c.name.strip():
            raise InvalidArgument("must be 1 to 200 characters without surrounding spaces", field=f"{f}.name")
        if c.id in ids:
            raise InvalidArgument(f"class id {c.id} appears twice", field=f"{f}.id")
        if c.name in names:
            raise InvalidArgument(f"class name {c.name!r} appears twice", field=f"{f}.name")
        ids.add(c.id)
        names.add(c.name)


def validate_keypoints(c: ClassDef, where: str, task_type: str) -> None:
    """A keypoint project's class declares its keypoints (unique names), a skeleton between them
    and a positive sigma per keypoint (or none); other projects' classes declare none."""
    if task_type != "KEYPOINTS":
        for name, value in (
            ("keypoints", c.keypoints),
            ("skeleton", c.skeleton),
            ("keypoint_sigmas", c.keypoint_sigmas),
        ):
            if value:
                raise InvalidArgument(f"only a KEYPOINTS project's classes have {name}", field=f"{where}.{name}")
        return
    k = len(c.keypoints)
    if not 1 <= k <= MAX_KEYPOINTS:
        raise InvalidArgument(
            f"a keypoint class declares 1 to {MAX_KEYPOINTS} keypoints, got {k}", field=f"{where}.keypoints"
        )
    seen: set[str] = set()
    for j, name in enumerate(c.keypoints):
        if not name or len(name) > 200 or name != name.strip():
            raise InvalidArgument(
                "must be 1 to 200 characters without surrounding spaces", field=f"{where}.keypoints[{j}]"
            )
        if name in seen:
            raise InvalidArgument(f"keypoint {name!r} appears twice", field=f"{where}.keypoints[{j}]")
        seen.add(name)
    for j, (a, b) in enumerate(c.skeleton):
        if not (0 <= a < k and 0 <= b < k) or a == b:
            raise InvalidArgument(
                f"edge ({a}, {b}) must join two different keypoints, positions 0 to {k - 1}",
                field=f"{where}.skeleton[{j}]",
            )
    if c.keypoint_sigmas:
        if len(c.keypoint_sigmas) != k:
            raise InvalidArgument(
                f"gives {len(c.keypoint_sigmas)} sigmas for {k} keypoints: give one per keypoint, or none",
                field=f"{where}.keypoint_sigmas",
            )
        for j, sigma in enumerate(c.keypoint_sigmas):
            if not (math.isfinite(sigma) and 0 < sigma <= 10):
                raise InvalidArgument(f"must be in (0, 10], got {sigma}", field=f"{where}.keypoint_sigmas[{j}]")


def validate_spaces(spaces: Sequence[EmbeddingSpace], *, prefix: str, indexed: bool = True) -> None:
    """``indexed=False`` for one space given on its own: fields are named ``<prefix>.dimension``."""
    names: set[str] = set()
    for i, s in enumerate(spaces):
        f = f"{prefix}.embedding_spaces[{i}]" if indexed else prefix
        if not NAME_RE.match(s.name):
            raise InvalidArgument(f"{s.name!r} is not a valid embedding space name", field=f"{f}.name")
        if s.name in names:
            raise InvalidArgument(f"embedding space {s.name!r} appears twice", field=f"{f}.name")
        names.add(s.name)
        if not 1 <= s.dimension <= 32768:
            raise InvalidArgument(f"must be in [1, 32768], got {s.dimension}", field=f"{f}.dimension")
        if s.metric not in METRICS:
            raise InvalidArgument(f"must be one of {', '.join(METRICS)}", field=f"{f}.metric")
        if s.level not in LEVELS:
            raise InvalidArgument(f"must be one of {', '.join(LEVELS)}", field=f"{f}.level")
        if not s.model_name or not s.model_version:
            raise InvalidArgument(
                "model_name and model_version are required: they are the lineage that keeps vectors of "
                "different models apart",
                field=f"{f}.model_name" if not s.model_name else f"{f}.model_version",
            )


_COLUMNS = (
    "name",
    "display_name",
    "description",
    "task_type",
    "classes",
    "embedding_spaces",
    "class_keypoints",
    "class_colors",
    "create_time",
    "update_time",
    "revision",
    "version",
)


class ProjectCatalog:
    def __init__(self, metrics: MetricsStore) -> None:
        self.metrics = metrics
        self._write_lock = threading.Lock()

    def _write(self, p: Project) -> Project:
        self.metrics.insert(
            "projects",
            [
                [
                    p.name,
                    p.display_name,
                    p.description,
                    p.task_type,
                    [(c.id, c.name) for c in p.classes],
                    [
                        (s.name, s.dimension, s.metric, s.level, s.model_name, s.model_version)
                        for s in p.embedding_spaces
                    ],
                    [
                        (c.id, list(c.keypoints), [tuple(e) for e in c.skeleton], list(c.keypoint_sigmas))
                        for c in p.classes
                        if c.keypoints
                    ],
                    {c.id: c.color.lower() for c in p.classes if c.color},
                    p.create_time,
                    p.update_time,
                    p.revision,
                    time.time_ns(),
                ]
            ],
            _COLUMNS,
        )
        return p

    def create(self, project: Project) -> Project:
        validate_project(project)
        with self._write_lock:
            if self.find(project.name) is not None:
                raise AlreadyExists(f"project {project.name!r} already exists", field="project.name")
            now = now_ms()
            return self._write(replace(project, create_time=now, update_time=now, revision=1))

    def find(self, name: str) -> Project | None:
        rows = self.metrics.query(
            "SELECT " + ", ".join(_COLUMNS[:-1]) + " FROM projects FINAL WHERE name = {name:String}",
            {"name": name},
        ).rows
        return _project(rows[0]) if rows else None

    def get(self, name: str) -> Project:
        if not name:
            raise InvalidArgument("is empty", field="project")
        p = self.find(name)
        if p is None:
            raise NotFound(f"project {name!r} does not exist", field="project")
        return p

    def list(self, *, page: Page, only: frozenset[str] | None = None) -> tuple[list[Project], int]:
        """Projects by name; ``only`` restricts to these names (the caller's scopes)."""
        where, params = "1", {}
        if only is not None:
            where = "name IN {only:Array(String)}"
            params["only"] = sorted(only)
        total = int(self.metrics.query(f"SELECT count() FROM projects FINAL WHERE {where}", params).scalar() or 0)
        rows = self.metrics.query(
            "SELECT " + ", ".join(_COLUMNS[:-1]) + f" FROM projects FINAL WHERE {where}"
            " ORDER BY name LIMIT {limit:UInt32} OFFSET {offset:UInt64}",
            {**params, "limit": page.size, "offset": page.offset},
        ).rows
        return [_project(r) for r in rows], total

    def update(self, name: str, update: Project, paths: Sequence[str]) -> Project:
        if not paths:
            raise InvalidArgument(f"name at least one of {', '.join(UPDATABLE)}", field="update_mask")
        for path in paths:
            if path not in UPDATABLE:
                raise InvalidArgument(
                    f"{path!r} cannot be updated; allowed: {', '.join(UPDATABLE)}", field="update_mask"
                )
        with self._write_lock:
            current = self.get(name)
            changes: dict[str, object] = {}
            if "display_name" in paths:
                changes["display_name"] = update.display_name
            if "description" in paths:
                changes["description"] = update.description
            if "classes" in paths:
                _check_append_only(
                    {c.id: c for c in current.classes}, {c.id: c for c in update.classes}, "update.classes", "class id"
                )
                changes["classes"] = tuple(update.classes)
            if "embedding_spaces" in paths:
                _check_append_only(
                    {s.name: s for s in current.embedding_spaces},
                    {s.name: s for s in update.embedding_spaces},
                    "update.embedding_spaces",
                    "embedding space",
                )
                changes["embedding_spaces"] = tuple(update.embedding_spaces)
            new = replace(current, **changes, update_time=now_ms(), revision=current.revision + 1)  # type: ignore[arg-type]
            validate_project(new, prefix="update")
            return self._write(new)

    def add_embedding_space(self, project: str, space: EmbeddingSpace) -> EmbeddingSpace:
        """Adds a space to a project; an existing name is refused (spaces never change)."""
        current = self.get(project)
        if any(s.name == space.name for s in current.embedding_spaces):
            raise AlreadyExists(
                f"project {project!r} already has an embedding space {space.name!r}", field="embedding_space.name"
            )
        validate_spaces([space], prefix="embedding_space", indexed=False)
        update = replace(current, embedding_spaces=(*current.embedding_spaces, space))
        self.update(project, update, ["embedding_spaces"])
        return space

    def get_embedding_space(self, project: str, name: str) -> EmbeddingSpace:
        for space in self.get(project).embedding_spaces:
            if space.name == name:
                return space
        raise NotFound(f"project {project!r} has no embedding space {name!r}", field="embedding_space")


def _check_append_only(old: dict[object, object], new: dict[object, object], field_name: str, what: str) -> None:
    for key, value in old.items():
        if key not in new:
            raise FailedPrecondition(f"{what} {key!r} cannot be removed: stored data refers to it", field=field_name)
        if new[key] != value:
            raise FailedPrecondition(f"{what} {key!r} cannot be redefined: stored data refers to it", field=field_name)


def _project(row: Sequence[object]) -> Project:
    name, display, desc, task, classes, spaces, keypoints, colors, ct, ut, rev = row
    shapes = {int(k["id"]): k for k in map(_named, keypoints)}  # type: ignore[call-overload]
    colored = {int(k): str(v) for k, v in dict(colors).items()}  # type: ignore[call-overload]
    return Project(
        name=str(name),
        task_type=str(task),
        display_name=str(display),
        description=str(desc),
        classes=tuple(
            replace(_class(_named(c), shapes), color=colored.get(int(_named(c)["id"]), ""))  # type: ignore[call-overload]
            for c in classes  # type: ignore[attr-defined]
        ),
        embedding_spaces=tuple(
            EmbeddingSpace(
                str(s["name"]),
                int(s["dimension"]),
                str(s["metric"]),
                str(s["level"]),
                str(s["model_name"]),
                str(s["model_version"]),
            )
            for s in map(_named, spaces)  # type: ignore[call-overload]
        ),
        create_time=as_utc(ct),
        update_time=as_utc(ut),
        revision=int(rev),  # type: ignore[call-overload]
    )


def _class(c: dict[str, object], shapes: dict[int, dict[str, object]]) -> ClassDef:
    cid = int(c["id"])  # type: ignore[call-overload]
    shape = shapes.get(cid)
    if shape is None:
        return ClassDef(cid, str(c["name"]))
    return ClassDef(
        cid,
        str(c["name"]),
        tuple(str(n) for n in shape["names"]),  # type: ignore[attr-defined]
        tuple((int(a), int(b)) for a, b in shape["skeleton"]),  # type: ignore[attr-defined]
        tuple(float(v) for v in shape["sigmas"]),  # type: ignore[attr-defined]
    )


_TUPLE_FIELDS = {
    2: ("id", "name"),
    4: ("id", "names", "skeleton", "sigmas"),
    6: ("name", "dimension", "metric", "level", "model_name", "model_version"),
}


def _named(value: object) -> dict[str, object]:
    """A named ClickHouse tuple as a dict (clickhouse-connect returns dicts or tuples)."""
    if isinstance(value, dict):
        return value
    items = tuple(value)  # type: ignore[call-overload]
    return dict(zip(_TUPLE_FIELDS[len(items)], items, strict=True))
