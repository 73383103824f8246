"""gRPC channels from one Shoal process to the services: the console calls them with each person's
API key, and the labeling bridge calls analysis and the sampler with its own caller's.

:class:`Channels` keeps one channel per target, over TLS when a CA bundle is given (with a client
certificate when the services require one). :func:`client_tls` reads how to reach the services from
the settings (``console_grpc_ca_file``, ``console_grpc_client_cert_file`` and ``_key_file``,
``console_grpc_server_name``); a process calling its own port (the all-in-one ``shoal serve``) with
TLS on trusts its own certificate. :func:`forwarded_metadata` and :func:`forwarded_timeout` carry an
RPC's API key, request id and deadline onto the calls it makes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

from shoal.common import telemetry
from shoal.common.interceptors import REQUEST_ID_KEY
from shoal.common.settings import ShoalSettings

#: metadata keys that carry an API key (see shoal.common.interceptors.AuthInterceptor)
CREDENTIAL_KEYS = ("authorization", "x-api-key")


@dataclass(frozen=True)
class ClientTls:
    """How a process checks the services' certificate and proves itself to them. No CA: plaintext."""

    ca_file: Path | None = None
    server_name: str = ""
    #: (certificate chain, private key), PEM files
    client_cert: tuple[Path, Path] | None = None


def client_tls(settings: ShoalSettings, *, local: bool) -> ClientTls:
    """The client TLS of ``settings``; ``local``: the services are this process's own server, which
    with TLS on is reached with its own certificate as the CA, under the name ``localhost``."""
    ca_file = settings.console_grpc_ca_file
    server_name = settings.console_grpc_server_name
    if local and settings.tls_enabled and ca_file is None:
        ca_file = settings.tls_cert_file
        server_name = server_name or "localhost"
    client_cert = None
    if settings.console_grpc_client_cert_file and settings.console_grpc_client_key_file:
        client_cert = (settings.console_grpc_client_cert_file, settings.console_grpc_client_key_file)
    return ClientTls(ca_file=ca_file, server_name=server_name, client_cert=client_cert)


class Channels:
    """One channel per ``host:port`` target, made at first use and kept until :meth:`close`."""

    def __init__(self, tls: ClientTls = ClientTls(), *, max_message_bytes: int = 64 * 1024 * 1024) -> None:
        self._root_certs = tls.ca_file.read_bytes() if tls.ca_file is not None else None
        self._key, self._chain = (
            (tls.client_cert[1].read_bytes(), tls.client_cert[0].read_bytes()) if tls.client_cert else (None, None)
        )
        self._options: list[tuple[str, int | str]] = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ]
        if tls.server_name:
            self._options.append(("grpc.ssl_target_name_override", tls.server_name))
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()

    @property
    def secure(self) -> bool:
        return self._root_certs is not None

    def get(self, target: str) -> grpc.Channel:
        with self._lock:
            channel = self._channels.get(target)
            if channel is None:
                if self._root_certs is not None:
                    creds = grpc.ssl_channel_credentials(
                        root_certificates=self._root_certs, private_key=self._key, certificate_chain=self._chain
                    )
                    channel = grpc.secure_channel(target, creds, options=self._options)
                else:
                    channel = grpc.insecure_channel(target, options=self._options)
                self._channels[target] = channel
            return channel

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()


def api_key_metadata(api_key: str) -> tuple[tuple[str, str], ...]:
    """The metadata that presents ``api_key`` (none for an empty key)."""
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()


def forwarded_metadata(context: grpc.ServicerContext) -> tuple[tuple[str, str], ...]:
    """The metadata of a call made on behalf of the RPC ``context`` serves: its caller's API key, as
    sent, so the called service's own authorisation decides, and its request id, so the logs of both
    services carry the same one."""
    out = [(k.lower(), v) for k, v in (context.invocation_metadata() or ()) if k.lower() in CREDENTIAL_KEYS]
    request = telemetry.current_request()
    if request is not None:
        out.append((REQUEST_ID_KEY, request.request_id))
    return tuple(out)


def forwarded_timeout(default: float) -> float:
    """The timeout of a call made while serving an RPC: the time left before its caller's deadline
    (at most ``default``), or ``default`` when the caller set none."""
    request = telemetry.current_request()
    remaining = request.remaining() if request is not None else None
    return default if remaining is None else max(0.0, min(default, remaining))
