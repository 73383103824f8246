"""The ``shoal`` command."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from pydantic import ValidationError
from shoal.common import logs
from shoal.common.errors import ConfigurationError, ShoalError
from shoal.common.settings import SERVICE_NAMES, ShoalSettings, settings_markdown, unknown_env_settings

log = logging.getLogger("shoal")


def _settings(overrides: dict[str, object]) -> ShoalSettings:
    try:
        return ShoalSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else ""
            where = f"SHOAL_{name.upper()}" if name else "settings"
            lines.append(f"  {where}: {err['msg']}")
        raise ConfigurationError("invalid settings:\n" + "\n".join(lines)) from None


def cmd_serve(args: argparse.Namespace) -> int:
    from shoal.app import build_server, check_external_stores

    settings = _settings(
        {
            "port": args.port,
            "host": args.host,
            "data_dir": Path(args.data_dir) if args.data_dir else None,
            "insecure_dev_mode": True if args.insecure_dev_mode else None,
        }
    )
    logs.configure(settings.log_level, settings.log_format)
    for name in unknown_env_settings():
        log.warning("ignoring %s: no such setting (see `shoal settings`)", name)
    services = SERVICE_NAMES
    if args.service:
        check_external_stores(settings, args.service)
        services = (args.service,)
    else:
        log.info("all-in-one mode with data under %s", settings.data_dir.resolve())
    server = build_server(settings, services)
    server.serve()
    return 0


def _keystore(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from shoal.common import auth, jobs
    from shoal.common.auth import KeyStore
    from shoal.common.stores.metrics import open_metrics_store

    settings = _settings({"data_dir": Path(args.data_dir) if args.data_dir else None})
    logs.configure("WARNING", settings.log_format)
    password = settings.clickhouse_password.get_secret_value() if settings.clickhouse_password else None
    metrics = open_metrics_store(
        settings.resolved_metrics_url,
        database=settings.clickhouse_database,
        username=settings.clickhouse_username,
        password=password,
        verify_tls=settings.clickhouse_verify_tls,
        timeout_seconds=settings.store_timeout_seconds,
    )
    metrics.migrate([*auth.MIGRATIONS, *jobs.MIGRATIONS])
    return KeyStore(metrics, cache_seconds=0)


def cmd_keys(args: argparse.Namespace) -> int:
    keys = _keystore(args)
    try:
        if args.keys_command == "create":
            key_id, key = keys.create(args.project, description=args.description)
            print(key)
            print(f"key {key_id} for {', '.join(sorted(set(args.project)))}: shown once, store it now", file=sys.stderr)
        elif args.keys_command == "list":
            for row in keys.list():
                state = "revoked" if row["revoked"] else "active"
                print(f"{row['key_id']}  {state:8s}  {','.join(row['projects'])}  {row['description']}")
        elif args.keys_command == "revoke":
            keys.revoke(args.key_id)
    finally:
        keys.metrics.close()
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    from shoal.client import Client

    with Client(args.target, tls=args.tls, ca_file=Path(args.ca_file) if args.ca_file else None) as client:
        status = client.health_status(args.service, timeout=args.timeout)
    print(status)
    return 0 if status == "SERVING" else 1


def cmd_settings(args: argparse.Namespace) -> int:
    if args.markdown:
        print(settings_markdown())
    else:
        settings = _settings({})
        print(json.dumps(json.loads(settings.model_dump_json()), indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from shoal.demo import run_demo

    logs.configure("INFO")
    return run_demo(Path(args.out))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shoal", description="Find and fix problems in machine-learning datasets.")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the services (all four, embedded stores) or one of them")
    serve.add_argument("--service", choices=SERVICE_NAMES, help="run only this service, against external servers")
    serve.add_argument("--port", type=int, help="gRPC port (SHOAL_PORT, default 50051)")
    serve.add_argument("--host", help="bind address (SHOAL_HOST, default 127.0.0.1)")
    serve.add_argument("--data-dir", help="where embedded stores keep data (SHOAL_DATA_DIR, default ./shoal-data)")
    serve.add_argument("--insecure-dev-mode", action="store_true", help="accept calls without API keys (laptop only)")
    serve.set_defaults(fn=cmd_serve)

    keys = sub.add_parser("keys", help="manage API keys (talks to the metrics store directly)")
    keys.add_argument("--data-dir", help="data dir of an embedded deployment (SHOAL_DATA_DIR)")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    create = ksub.add_parser("create", help="create a key and print it once")
    create.add_argument("--project", action="append", required=True, help="project the key may use; '*' for admin")
    create.add_argument("--description", default="", help="what the key is for")
    ksub.add_parser("list", help="list keys (ids and scopes, never the keys)")
    revoke = ksub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")
    keys.set_defaults(fn=cmd_keys)

    health = sub.add_parser("health", help="check a server's health (exit 0 when SERVING)")
    health.add_argument("--target", default="localhost:50051")
    health.add_argument("--service", default="", help="full service name; empty for the whole server")
    health.add_argument("--tls", action="store_true")
    health.add_argument("--ca-file")
    health.add_argument("--timeout", type=float, default=5.0)
    health.set_defaults(fn=cmd_health)

    st = sub.add_parser("settings", help="print the effective settings (secrets hidden)")
    st.add_argument("--markdown", action="store_true", help="the settings reference as a Markdown table")
    st.set_defaults(fn=cmd_settings)

    demo = sub.add_parser("demo", help="run the demo job on the embedded defaults")
    demo.add_argument("--out", default="demo-out")
    demo.set_defaults(fn=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except ConfigurationError as exc:
        print(f"shoal: {exc}", file=sys.stderr)
        return 2
    except ShoalError as exc:
        print(f"shoal: {exc.describe()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
