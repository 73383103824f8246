"""Settings of a Shoal process, read once at start from ``SHOAL_*`` environment variables.

Every field below is a setting; its environment variable is ``SHOAL_`` + the upper-cased field
name (``port`` -> ``SHOAL_PORT``). Unknown fields passed in code are refused, values are parsed
strictly, and secrets are :class:`pydantic.SecretStr` so they never appear in logs or reprs.
docs/reference/settings.md is generated from this model (``make docs``; ``shoal settings --markdown`` prints a table).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SHOAL_"
# Environment variables with the prefix that are read by the tooling around the settings
# (scripts and the test harness), not by the services.
NON_SETTING_ENV = frozenset(
    {
        "SHOAL_CACHE_DIR",
        "SHOAL_NUMBA_CACHE_SEED",
        "SHOAL_TEST_CLICKHOUSE_URL",
        "SHOAL_TEST_KAFKA",
        "SHOAL_TEST_MILVUS_URI",
    }
)

SERVICE_NAMES = ("ingest", "analysis", "sampler", "labeling_bridge")

#: an API key: ``shoal_<key id>_<secret>``
API_KEY_RE = re.compile(r"^shoal_([0-9a-f]{16})_([A-Za-z0-9_-]{20,128})$")
API_KEY_RULE = "shoal_<16 lowercase hex>_<secret of 20 to 128 characters A-Za-z0-9_->"


def api_key_problem(key: str) -> str | None:
    """What is wrong with ``key`` as an API key, in words that never quote it; None if nothing."""
    if API_KEY_RE.match(key):
        return None
    m = re.match(r"^shoal_[0-9a-f]{16}_(.*)$", key, re.DOTALL)
    if m is None:
        return f"it does not start with shoal_<16 lowercase hex>_ ({len(key)} characters in all)"
    secret = m.group(1)
    others = sum(1 for ch in secret if not (ch.isascii() and (ch.isalnum() or ch in "_-")))
    if others:
        return f"its secret has {len(secret)} characters, {others} of them not A-Za-z0-9_-"
    return f"its secret has {len(secret)} characters"


class ShoalSettings(BaseSettings):
    """Settings shared by every service; a service reads the ones it needs."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", strict=True, validate_default=True, hide_input_in_errors=True
    )

    # --- serving -------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the gRPC server binds; `0.0.0.0` in a pod.")
    port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 picks a free one and logs it).")
    data_dir: Path = Field(Path("shoal-data"), description="Where the embedded stores keep their files.")
    max_message_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest gRPC message accepted or sent, in bytes."
    )
    worker_threads: int = Field(16, ge=1, le=1024, description="Threads serving RPCs concurrently.")
    grace_seconds: float = Field(
        20.0, ge=0, description="On SIGTERM, how long in-flight RPCs may finish before being cancelled."
    )
    drain_seconds: float = Field(
        2.0,
        ge=0,
        description="On SIGTERM, how long health reports NOT_SERVING before the server stops accepting "
        "calls, so load balancers take the pod out first.",
    )
    readiness_interval_seconds: float = Field(
        2.0, gt=0, description="How often the stores are probed to keep the health status current."
    )
    health_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="A second, plaintext port serving only `grpc.health.v1` (0 picks a free one): for "
        "kubelet gRPC probes, which cannot speak TLS, when TLS is on. Unset: none.",
    )
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Port of the Prometheus metrics endpoint (`http://HOST:PORT/metrics`, 0 picks a free "
        "one). Unset: no endpoint.",
    )
    webhook_port: int = Field(
        8090,
        ge=0,
        le=65535,
        description="HTTP port of the labeling bridge's webhooks (`POST /webhooks/<platform>/<project>`), "
        "served when a labeling platform and SHOAL_LABELING_WEBHOOK_URL are set.",
    )

    # --- console -------------------------------------------------------------------------
    console_port: int = Field(
        8080,
        ge=0,
        le=65535,
        description="HTTP port of the web console, served by `shoal serve` beside the services and by "
        "`shoal serve --service console` (0 picks a free one).",
    )
    console_enabled: bool = Field(True, description="Serve the web console in the all-in-one `shoal serve`.")
    console_grpc_target: str = Field(
        "",
        description="Where the console reaches the services, `host:port`, when it runs on its own "
        "(`--service console`); the all-in-one server uses its own port.",
    )
    console_service_targets: dict[str, str] = Field(
        default_factory=dict,
        description='Per service, a target that replaces console_grpc_target, as JSON: `{"analysis": '
        '"shoal-analysis:50051", ...}`.',
    )
    console_grpc_ca_file: Path | None = Field(
        None,
        description="PEM CA bundle that signed the services' certificate: the console (and the labeling bridge, "
        "calling analysis and the sampler) then calls them over TLS. The all-in-one server with TLS on uses "
        "tls_cert_file.",
    )
    console_grpc_client_cert_file: Path | None = Field(
        None,
        description="PEM client certificate the console and the labeling bridge present to the services when they "
        "require one "
        "(SHOAL_TLS_CLIENT_CA_FILE), with console_grpc_client_key_file.",
    )
    console_grpc_client_key_file: Path | None = Field(
        None, description="PEM private key of console_grpc_client_cert_file."
    )
    console_grpc_server_name: str = Field(
        "",
        description="Name the services' TLS certificate is checked against by the console and the labeling "
        "bridge, when it is not the target's host.",
    )
    console_media_roots: list[str] = Field(
        default_factory=list,
        description="Local folders (JSON list) the console may read frames' media from (`file://` URIs and plain "
        "paths), and ingest and analysis segmentation label images and probability maps; anything outside them, "
        "through `..` or a symlink, is refused. Unset: `media` under data_dir.",
    )
    console_allow_private_http: bool = Field(
        False,
        description="Let the console fetch http(s) media from loopback, private and link-local addresses "
        "(refused by default, so a media URI cannot reach internal services).",
    )
    console_media_max_mb: int = Field(64, ge=1, le=4096, description="Largest media file the console reads, in MiB.")
    console_cache_dir: Path | None = Field(
        None, description="Where the console keeps thumbnails; unset: `console-cache` under data_dir."
    )
    console_cache_max_mb: int = Field(
        512, ge=1, description="Most disk the thumbnail cache may use, in MiB; the least recently used go first."
    )
    console_s3_endpoint_url: str = Field(
        "",
        description="S3-compatible store the console reads `s3://bucket/key` media from, e.g. `http://minio:9000` "
        "(path-style URLs; MinIO, Ceph, `https://storage.googleapis.com` for GCS with HMAC keys). Empty: AWS S3's "
        "regional endpoint `https://s3.<console_s3_region>.amazonaws.com`.",
    )
    console_s3_region: str = Field(
        "us-east-1", min_length=1, description="Region of the console's S3 requests' SigV4 signature (and of AWS's)."
    )
    console_s3_access_key_id: str = Field(
        "",
        description="Access key id the console signs S3 requests with (AWS Signature Version 4), with "
        "console_s3_secret_access_key; both unset: unsigned requests (buckets that allow anonymous reads).",
    )
    console_s3_secret_access_key: SecretStr | None = Field(
        None, description="Secret access key of console_s3_access_key_id; never logged."
    )
    console_s3_buckets: list[str] = Field(
        default_factory=list,
        description="Buckets (JSON list) the console may read `s3://` media from; empty: none, so `s3://` media are "
        "refused.",
    )
    console_cookie_secure: bool | None = Field(
        None,
        description="Mark the console's cookies Secure; unset: when TLS is on. Set true behind an HTTPS ingress.",
    )

    # --- security ------------------------------------------------------------------------
    tls_cert_file: Path | None = Field(None, description="PEM certificate chain; with tls_key_file turns TLS on.")
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file.")
    tls_client_ca_file: Path | None = Field(
        None, description="PEM CA bundle; when set, clients must present a certificate it signed (mTLS)."
    )
    insecure_dev_mode: bool = Field(
        False,
        description="Accept every call without an API key, as an administrator. For a laptop only; "
        "logged as a warning at start.",
    )
    admin_api_key: SecretStr | None = Field(
        None,
        description=f"An administrator API key (scope `*`) registered at start, e.g. from a Kubernetes "
        f"Secret: `{API_KEY_RULE}` (a malformed one stops the process at start). Once revoked it stays revoked: "
        "rotate the Secret. Create more keys with `shoal keys create`.",
    )

    # --- stores --------------------------------------------------------------------------
    metrics_url: str = Field(
        "",
        description="ClickHouse: `chdb:///PATH` (embedded, the default under data_dir) or "
        "`http(s)://host:8123` for a server.",
    )
    clickhouse_database: str = Field(
        "shoal", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", description="Database of every Shoal table."
    )
    clickhouse_username: str = Field("default", description="ClickHouse server user.")
    clickhouse_password: SecretStr | None = Field(None, description="ClickHouse server password.")
    clickhouse_verify_tls: bool = Field(True, description="Verify the ClickHouse server's certificate.")
    clickhouse_ca_file: Path | None = Field(
        None, description="PEM CA bundle to verify an `https://` ClickHouse server (default: the system's)."
    )
    vectors_url: str = Field(
        "",
        description="Milvus: a file path for Milvus Lite (embedded, the default under data_dir) or "
        "`http(s)://host:19530` for a server.",
    )
    milvus_token: SecretStr | None = Field(None, description="Milvus server token (`user:password` or an API key).")
    milvus_db_name: str = Field("", description="Milvus database; empty is the server's default.")
    milvus_ca_file: Path | None = Field(
        None, description="PEM CA bundle to verify an `https://` Milvus server (default: gRPC's roots)."
    )
    store_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="Timeout of every store call (retries included; an RPC's own deadline shortens it).",
    )
    min_free_disk_mb: int = Field(
        100,
        ge=0,
        description="Health turns NOT_SERVING when the disk of an embedded store (under data_dir) has less free "
        "space than this, in MiB, or is read-only; SERVING again once it has.",
    )

    # --- events --------------------------------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        "",
        description="Comma-separated Kafka brokers. Empty: the embedded in-process bus under data_dir.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="Kafka SASL mechanism."
    )
    kafka_sasl_username: str | None = Field(None, description="Kafka SASL user.")
    kafka_sasl_password: SecretStr | None = Field(None, description="Kafka SASL password.")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle to verify the Kafka brokers.")
    topic_prefix: str = Field(
        "shoal", pattern=r"^[A-Za-z0-9._-]{1,100}$", description="Prefix of every Kafka topic Shoal uses."
    )
    topic_partitions: int = Field(12, ge=1, le=1000, description="Partitions of topics Shoal creates.")
    topic_replication_factor: int = Field(1, ge=1, le=10, description="Replication of topics Shoal creates.")
    topic_retention_hours: float = Field(
        168.0, gt=0, description="Hours topics keep events (`retention.ms` in Kafka and the embedded bus)."
    )
    dead_letter_retention_hours: float = Field(
        720.0, gt=0, description="How long the dead-letter topic keeps rejected events, for inspection and replay."
    )

    # --- ingest ----------------------------------------------------------------------------
    ingest_consumer_group: str = Field("shoal-ingest", description="Kafka consumer group of the ingest workers.")
    ingest_consumers: int = Field(
        1, ge=0, le=64, description="Upload consumers per ingest process (0: this process only accepts uploads)."
    )
    ingest_max_chunk_items: int = Field(
        10_000, ge=1, le=1_000_000, description="Most frames, labels, inferences or embeddings in one upload chunk."
    )
    ingest_count_cuboid_points: bool = Field(
        True,
        description="Count the points inside labeled cuboids that come without `num_points` by reading each "
        "frame's point cloud as it is written (through the media sources console_media_roots and the S3 "
        "settings allow); off: those counts stay unknown and ingest reads no media for them.",
    )

    # --- sampler ---------------------------------------------------------------------------
    sampler_consumer_group: str = Field(
        "shoal-sampler",
        description="Kafka consumer group of the sampler's consumer of the ingested topic (standing campaigns).",
    )

    # --- labeling bridge -------------------------------------------------------------------
    label_studio_url: str = Field(
        "",
        description="Label Studio server the labeling bridge sends tasks to, e.g. `http://label-studio:8080`. "
        "Empty: no platform; requests are recorded and wait.",
    )
    label_studio_token: SecretStr | None = Field(
        None, description="Label Studio personal access token (or a legacy token where enabled)."
    )
    labeling_webhook_url: str = Field(
        "",
        description="Base URL under which the labeling platform reaches the bridge's webhook port, e.g. "
        "`https://shoal.example.com`; empty: no webhooks, annotations come by polling only.",
    )
    labeling_webhook_secret: SecretStr | None = Field(
        None, description="Shared secret the platform sends with each webhook call (header `X-Shoal-Webhook-Token`)."
    )
    labeling_consumer_group: str = Field(
        "shoal-labeling-bridge", description="Kafka consumer group of the bridge's labeling-request consumer."
    )
    labeling_poll_seconds: float = Field(
        30.0, gt=0, description="How often the bridge polls the platform for annotations (the webhook fallback)."
    )
    labeling_retry_max_seconds: float = Field(
        300.0, gt=0, description="Longest wait between attempts to send to an unreachable platform."
    )
    analysis_target: str = Field(
        "",
        description="Where the labeling bridge reaches the analysis service, `host:port`, to read a label-issues "
        "job that SendForLabeling names (with the caller's API key). Empty: this server's own port when it runs "
        "analysis too; required for `shoal serve --service labeling_bridge`. TLS as console_grpc_ca_file, "
        "console_grpc_client_cert_file and console_grpc_server_name say.",
    )
    sampler_target: str = Field(
        "",
        description="Where the labeling bridge reaches the sampler, `host:port`, to read a campaign that "
        "SendForLabeling names (with the caller's API key). Empty: this server's own port when it runs the "
        "sampler too; required for `shoal serve --service labeling_bridge`. TLS as for analysis_target.",
    )

    # --- automations -----------------------------------------------------------------------
    automations_consumer_group: str = Field(
        "shoal-automations",
        description="Kafka consumer group of the analysis service's automations, which read the ingested topic "
        "and run the project's rules (docs/guides/automations.md).",
    )
    automations_allow_private_webhooks: bool = Field(
        False,
        description="Let automations deliver webhooks to loopback, private and link-local addresses (refused by "
        "default, so that whoever may create a rule cannot make the service post to internal services).",
    )
    automations_secret_key: SecretStr | None = Field(
        None,
        description="A passphrase of at least 32 characters the key that encrypts automations' webhook secrets at "
        "rest is derived from (AES-256-GCM, HKDF-SHA256); every server sharing the metrics store needs the same one. "
        "Unset: with the embedded metrics store, a random key kept in `secrets.key` beside it; with a ClickHouse "
        "server, webhook secrets are refused until it is set.",
    )

    # --- jobs ----------------------------------------------------------------------------
    job_heartbeat_seconds: float = Field(
        5.0, gt=0, description="How often a job runner marks its running and queued jobs alive."
    )
    job_stale_seconds: float = Field(
        30.0,
        gt=0,
        description="A job unmarked for this long lost its runner: a queued one is taken over, a running one failed.",
    )

    job_executor: Literal["in-process", "kubernetes"] = Field(
        "in-process",
        description="Where analysis and sampler jobs run: on a thread of the service that took them, or each as a "
        "Kubernetes Job whose Pod runs `shoal job run` from SHOAL_KUBERNETES_JOB_IMAGE, which the service follows "
        "(its failure reason, its cancellation) and re-attaches to after a restart.",
    )
    kubernetes_job_image: str = Field("", description="The image of the jobs' Pods (the services' own image).")
    kubernetes_namespace: str = Field(
        "",
        description="Where the jobs' Kubernetes Jobs are created; empty: the namespace the service runs in "
        "(its service account's), else `default`.",
    )
    kubernetes_kubeconfig: Path | None = Field(
        None, description="A kubeconfig to reach the API server; empty: the service account of the Pod (in-cluster)."
    )
    kubernetes_job_service_account: str = Field("", description="The service account of the jobs' Pods.")
    kubernetes_job_env_from: list[str] = Field(
        default_factory=list,
        description="ConfigMaps and Secrets whose keys become the jobs' environment (`configmap/NAME`, "
        "`secret/NAME`): the same settings and credentials as the service.",
    )
    kubernetes_job_pod_template: Path | None = Field(
        None,
        description="A JSON file of what the jobs' Pods share with the service's own Pod (the Helm chart writes it): "
        "`labels`, `env` (secretKeyRefs too), `envFrom`, `volumes` and `volumeMounts` (the stores' CA files), "
        "`imagePullSecrets`, `nodeSelector`, `tolerations`, `affinity`, `priorityClassName`.",
    )
    kubernetes_job_requests: dict[str, str] = Field(
        default_factory=lambda: {"cpu": "1", "memory": "4Gi"}, description="Resource requests of a job's Pod."
    )
    kubernetes_job_limits: dict[str, str] = Field(
        default_factory=lambda: {"memory": "16Gi"}, description="Resource limits of a job's Pod."
    )
    kubernetes_job_shards: int = Field(
        1,
        ge=1,
        le=64,
        description="At most this many Pods share a job that can be split, as the completions of one Indexed Job, "
        "then one more Pod finishes it from their parts. The neighbour job: from 20,001 to 100,000 frames its graph "
        "is exact, a shard per 20,000 frames (more CPU in all than NN-descent, spread over the Pods); above, a shard "
        "per 250,000 frames builds NN-descent graphs of overlapping cells of the frames; the graphs within classes "
        "are dealt to the shards. The embedding map: a shard per 1,000,000 frames to place beyond its fitted sample. "
        "1: every job in one Pod.",
    )
    kubernetes_job_deadline_seconds: int = Field(
        86400, gt=0, description="A job's Pod running longer is stopped by Kubernetes and the job failed."
    )
    kubernetes_job_ttl_seconds: int = Field(
        3600, ge=0, description="A finished Kubernetes Job (and its Pod's log) is kept this long."
    )

    warm_kernels: bool = Field(
        True,
        description="Load (or, the first time on a machine, compile) the jobs' compiled kernels on a background "
        "thread as a service starts, so that no job waits for a compiler; those that compile in every process "
        "once the service has run 10 s without a job, so that the warm-up does not slow its first jobs.",
    )

    answers_refresh_seconds: float = Field(
        1.0,
        ge=0,
        description="How often the analysis service checks whether the tables under the questions asked lately "
        "(heat maps, query pages, map viewports) changed, and computes their answers again in the background, so "
        "that the next call after an upload finds its answer kept. 0 turns the refresh off: the first call after a "
        "change computes its answer.",
    )
    answers_refresh_window_seconds: float = Field(
        600.0,
        gt=0,
        description="Questions asked within this many seconds are refreshed when their tables change; older ones "
        "are computed again only when asked.",
    )
    answers_prepare_sets: int = Field(
        4,
        ge=0,
        le=64,
        description="How many inference sets and embedding maps, those changed or finished most recently, the "
        "analysis service prepares the console's first views of in the background once their data has settled "
        "(the heat map, the counts of the splits, classes and confusion cells, the whole map), so that the first "
        "call finds them kept; it also writes large sets' grid sorts (`sorted_pages_above`) and ranks the rest of "
        "finished jobs' long lists (`ranked_pages_above`). 0 turns the preparation off. Runs in the refresher's rounds "
        "(`answers_refresh_seconds` must be above 0).",
    )
    ranked_pages_above: int = Field(
        100_000,
        ge=0,
        description="A finished label-issue or neighbour job whose list (its issues in one order, a detection "
        "job's flagged objects or frames, its outliers, its duplicate pairs) is longer than this keeps it sorted, "
        "so that a page at any depth reads its own rows instead of sorting the whole list (about a second at 10M "
        "frames): the first 100,000 rows of each order as the job ends, the rest in the background after it "
        "(the analysis service's preparer, `answers_prepare_sets` above 0). A shorter list is sorted when asked. "
        "0 keeps every non-empty list sorted.",
    )
    sorted_pages_above: int = Field(
        500_000,
        ge=0,
        description="An inference set with more frames than this keeps, once its data has settled, each of the "
        "example grid's sorts (loss, confidence and margin, up and down) whole, so that a page of any depth and any "
        "filter reads its own rows in order instead of sorting the set (0.25 to 0.8 s a page at 10M frames). "
        "Written by the analysis service's preparer (`answers_prepare_sets` above 0), six copies of the set's rows; "
        "a smaller set is sorted when asked. 0 keeps them for every set.",
    )

    # --- logging -------------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    log_format: Literal["text", "json"] = Field("text", description="`json` for one JSON object per line.")

    @field_validator("automations_secret_key")
    @classmethod
    def _check_automations_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must have at least 32 characters (a passphrase the encryption key is derived from)")
        return value

    @field_validator("admin_api_key", mode="after")
    @classmethod
    def _check_admin_api_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        key = value.get_secret_value().strip()  # a Secret file often ends in a newline
        problem = api_key_problem(key)
        if problem is not None:
            raise ValueError(f"must be {API_KEY_RULE}, but {problem}; the key is not shown")
        return SecretStr(key)

    @field_validator("console_s3_endpoint_url", mode="after")
    @classmethod
    def _check_s3_endpoint(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?$", value):
            raise ValueError("must be an http:// or https:// URL such as http://minio:9000, or empty for AWS S3")
        return value

    @field_validator("console_s3_buckets", mode="after")
    @classmethod
    def _check_s3_buckets(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name or "/" in name or name != name.strip():
                raise ValueError(f'{name!r} is not a bucket name: name buckets only, as in ["frames"]')
        return value

    @field_validator("console_s3_secret_access_key", mode="after")
    @classmethod
    def _strip_s3_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # a Secret file often ends in a newline, which would break every signature
        return None if value is None else SecretStr(value.get_secret_value().strip())

    @model_validator(mode="after")
    def _check_tls_pair(self) -> ShoalSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both SHOAL_TLS_CERT_FILE and SHOAL_TLS_KEY_FILE to turn TLS on, or neither")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("SHOAL_TLS_CLIENT_CA_FILE needs SHOAL_TLS_CERT_FILE and SHOAL_TLS_KEY_FILE")
        if (self.console_grpc_client_cert_file is None) != (self.console_grpc_client_key_file is None):
            raise ValueError(
                "set both SHOAL_CONSOLE_GRPC_CLIENT_CERT_FILE and SHOAL_CONSOLE_GRPC_CLIENT_KEY_FILE, or neither"
            )
        if self.kafka_sasl_mechanism and not (self.kafka_sasl_username and self.kafka_sasl_password):
            raise ValueError("SHOAL_KAFKA_SASL_MECHANISM needs SHOAL_KAFKA_SASL_USERNAME and SHOAL_KAFKA_SASL_PASSWORD")
        if self.job_executor == "kubernetes" and not self.kubernetes_job_image:
            raise ValueError("SHOAL_JOB_EXECUTOR=kubernetes needs SHOAL_KUBERNETES_JOB_IMAGE (the services' image)")
        for ref in self.kubernetes_job_env_from:
            if not re.fullmatch(r"(configmap|secret)/[a-z0-9]([-a-z0-9.]*[a-z0-9])?", ref):
                raise ValueError(f"SHOAL_KUBERNETES_JOB_ENV_FROM: {ref!r} is not configmap/NAME or secret/NAME")
        if bool(self.console_s3_access_key_id) != bool(self.console_s3_secret_access_key):
            raise ValueError(
                "set both SHOAL_CONSOLE_S3_ACCESS_KEY_ID and SHOAL_CONSOLE_S3_SECRET_ACCESS_KEY, or neither "
                "(unsigned requests)"
            )
        return self

    # Resolved locations -------------------------------------------------------------------
    @property
    def resolved_metrics_url(self) -> str:
        return self.metrics_url or f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def resolved_vectors_url(self) -> str:
        return self.vectors_url or str((self.data_dir / "milvus.db").resolve())

    @property
    def embedded_bus_dir(self) -> Path:
        return (self.data_dir / "bus").resolve()

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert_file is not None


def unknown_env_settings(environ: dict[str, str] | None = None) -> list[str]:
    """``SHOAL_*`` variables that are no setting (most likely typos), sorted."""
    env = os.environ if environ is None else environ
    known = {ENV_PREFIX + name.upper() for name in ShoalSettings.model_fields} | NON_SETTING_ENV
    return sorted(k for k in env if k.upper().startswith(ENV_PREFIX) and k.upper() not in known)


def settings_markdown() -> str:
    """The settings as a Markdown table (``shoal settings --markdown``)."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in ShoalSettings.model_fields.items():
        default = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
        shown = "" if default in (None, "", [], {}) else f"`{default}`"
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | {shown} | {field.description or ''} |")
    return "\n".join(rows)
