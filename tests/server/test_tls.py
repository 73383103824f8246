"""TLS: with a certificate configured the server speaks only TLS; with a client CA, only to
clients holding a certificate it signed."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shoal.client import Client
from shoal.common.settings import ShoalSettings
from tests.server.conftest import Running


def _cert(
    path: Path,
    name: str,
    *,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    ca: bool = False,
):  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    (path / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (path / f"{name}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert, key


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    ca = _cert(tmp_path, "ca", ca=True)
    _cert(tmp_path, "server", issuer=ca)
    _cert(tmp_path, "client", issuer=ca)
    return tmp_path


def _tls_target(r: Running) -> str:
    return f"localhost:{r.server.port}"


def test_tls_server_refuses_plaintext_and_serves_tls(embedded_settings: ShoalSettings, pki: Path) -> None:
    settings = embedded_settings.model_copy(
        update={"tls_cert_file": pki / "server.crt", "tls_key_file": pki / "server.key"}
    )
    # start_server checks health over plaintext, which must fail: build by hand
    from shoal.app import build_server

    server = build_server(settings)
    port = server.start()
    try:
        with Client(f"localhost:{port}", tls=True, ca_file=pki / "ca.crt") as c:
            assert c.health_status(timeout=10) in ("SERVING", "NOT_SERVING")
        with Client(f"localhost:{port}") as plaintext:
            assert plaintext.health_status(timeout=2) == "UNAVAILABLE"
    finally:
        server.stop(grace=1)


def test_mutual_tls_needs_a_client_certificate(embedded_settings: ShoalSettings, pki: Path) -> None:
    from shoal.app import build_server

    settings = embedded_settings.model_copy(
        update={
            "tls_cert_file": pki / "server.crt",
            "tls_key_file": pki / "server.key",
            "tls_client_ca_file": pki / "ca.crt",
        }
    )
    server = build_server(settings)
    port = server.start()
    try:
        ca = (pki / "ca.crt").read_bytes()
        anonymous = grpc.secure_channel(f"localhost:{port}", grpc.ssl_channel_credentials(root_certificates=ca))
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        with pytest.raises(grpc.RpcError) as info:
            health_pb2_grpc.HealthStub(anonymous).Check(health_pb2.HealthCheckRequest(), timeout=3)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        creds = grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=(pki / "client.key").read_bytes(),
            certificate_chain=(pki / "client.crt").read_bytes(),
        )
        mutual = grpc.secure_channel(f"localhost:{port}", creds)
        resp = health_pb2_grpc.HealthStub(mutual).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert resp.status in (health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING)
        anonymous.close()
        mutual.close()
    finally:
        server.stop(grace=1)
