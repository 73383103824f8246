"""The console's media from an S3-compatible object store: a real S3Proxy server (SigV4 checked,
objects on disk), buckets and objects put there with signed PUTs, frames whose media URIs are
``s3://bucket/key``, and the images read back through the console's HTTP API as a browser would;
plus the signer against AWS's published Signature Version 4 examples for S3."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import pathlib
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image
from pydantic import SecretStr

from shoal.common.objectstore import SigV4Signer, uri_encode
from shoal.ingest.v1 import ingest_pb2 as pb
from shoal.sdk import UploadColumns
from tests.conftest import REPO, announce
from tests.console.conftest import Console, start_console
from tests.console.test_security import Session
from tests.harness.s3_server import S3Server, default_libs_dir

BUCKET = "frames"
SPACED_KEY = "night shots/é 1+2.jpg"  # spaces, non-ASCII and '+' must be encoded once, as S3 signs them


def _png(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (300, 200), colour).save(out, "PNG")
    return out.getvalue()


def _jpeg(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, "JPEG", quality=95)
    return out.getvalue()


OBJECTS = {
    (BUCKET, "cars/a.png"): _png((0, 128, 255)),
    (BUCKET, SPACED_KEY): _jpeg((230, 159, 0)),
    ("private", "secret.png"): _png((255, 0, 0)),
}
URIS = {
    "car": f"s3://{BUCKET}/cars/a.png",
    "spaced": f"s3://{BUCKET}/{SPACED_KEY}",
    "missing": f"s3://{BUCKET}/cars/nope.png",
    "private": "s3://private/secret.png",
    "dotdot": f"s3://{BUCKET}/../private/secret.png",
}


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[S3Server]:
    """S3Proxy with the bucket the console may read and one it may not, filled with signed PUTs."""
    server = S3Server(libs_dir=default_libs_dir(REPO), work_dir=tmp_path_factory.mktemp("s3proxy"))
    announce(pytestconfig, "starting S3Proxy (jars from Maven Central, filesystem storage)")
    server.start()
    announce(pytestconfig, f"S3Proxy ready at {server.url} after {server.startup_seconds:.1f}s")
    for bucket in sorted({bucket for bucket, _ in OBJECTS}):
        server.create_bucket(bucket)
    for (bucket, key), body in OBJECTS.items():
        server.put_object(bucket, key, body)
    yield server
    server.stop()


def _console(base: pathlib.Path, chdb_path: pathlib.Path, s3: S3Server, secret: str) -> Console:
    console = start_console(
        base,
        chdb_path,
        console_s3_endpoint_url=s3.url,
        console_s3_region="us-east-1",
        console_s3_access_key_id=s3.access_key_id,
        console_s3_secret_access_key=secret,
        console_s3_buckets=[BUCKET],
    )
    with console.client() as c:
        c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(
            name="store", task_type=pb.TASK_TYPE_CLASSIFICATION, classes=[pb.ClassDef(id=0, name="a")])))  # fmt: skip
        c.ingest.CreateDataset(
            pb.CreateDatasetRequest(project="store", dataset=pb.Dataset(name="d", kind=pb.DATASET_KIND_LABELED))
        )
        r = c.upload("store", "d", UploadColumns(frame_ids=list(URIS), media_uris=list(URIS.values())), progress=False)
        assert c.wait_for_upload("store", r.upload_id, timeout=120).state == pb.UPLOAD_STATE_COMPLETED
    return console


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, chdb_path: pathlib.Path, s3: S3Server) -> Iterator[Console]:
    c = _console(tmp_path_factory.mktemp("console-s3"), chdb_path, s3, s3.secret_access_key)
    yield c
    c.server.stop(grace=1)


def _is_placeholder(resp: Any) -> bool:
    return resp.headers["content-type"] == "image/svg+xml" and resp.content.lstrip().startswith(b"<svg")


@pytest.mark.integration
def test_s3_media_come_back_as_stored_and_as_thumbnails(console: Console) -> None:
    s = Session(console)
    full = s.media("store", "d", "car", size="full")
    assert full.status_code == 200, full.headers.get("x-shoal-media-error")
    assert full.headers["content-type"] == "image/png" and full.content == OBJECTS[(BUCKET, "cars/a.png")]
    thumb = s.media("store", "d", "car")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(thumb.content)) as img:
        assert img.size == (300, 200)  # already within 320 px
        r, g, b = img.convert("RGB").getpixel((150, 100))
        assert abs(r - 0) < 8 and abs(g - 128) < 8 and abs(b - 255) < 8
    spaced = s.media("store", "d", "spaced", size="full")
    assert spaced.status_code == 200, spaced.headers.get("x-shoal-media-error")
    assert spaced.headers["content-type"] == "image/jpeg" and spaced.content == OBJECTS[(BUCKET, SPACED_KEY)]


@pytest.mark.integration
def test_a_missing_object_is_a_placeholder_and_a_bucket_not_named_is_refused(console: Console) -> None:
    s = Session(console)
    for size in ("thumb", "full"):
        missing = s.media("store", "d", "missing", size)
        assert missing.status_code == 404 and _is_placeholder(missing)
        assert "no object s3://frames/cars/nope.png" in missing.headers["x-shoal-media-error"]
        for frame in ("private", "dotdot"):
            refused = s.media("store", "d", frame, size)
            assert refused.status_code == 403 and _is_placeholder(refused), (frame, refused.status_code)
            assert refused.content != OBJECTS[("private", "secret.png")]
    assert "private is not one the console may read" in s.media("store", "d", "private").headers["x-shoal-media-error"]


@pytest.mark.integration
def test_credentials_the_store_refuses_are_a_placeholder_and_the_secret_never_shows(
    tmp_path_factory: pytest.TempPathFactory,
    chdb_path: pathlib.Path,
    s3: S3Server,
    console: Console,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "wrong-" + secrets.token_urlsafe(18)
    with caplog.at_level(logging.DEBUG):
        other = _console(tmp_path_factory.mktemp("console-s3-wrong"), chdb_path, s3, wrong)
        try:
            s = Session(other)
            for size in ("thumb", "full"):
                resp = s.media("store", "d", "car", size)
                assert resp.status_code == 404 and _is_placeholder(resp)
                reason = resp.headers["x-shoal-media-error"]
                assert "refused the console's credentials" in reason and "SignatureDoesNotMatch" in reason
                shown = resp.text + str(resp.headers)
                assert wrong not in shown and s3.secret_access_key not in shown
        finally:
            other.server.stop(grace=1)
    logged = caplog.text
    assert "SignatureDoesNotMatch" in logged and "SHOAL_CONSOLE_S3_SECRET_ACCESS_KEY" in logged
    assert wrong not in logged and s3.secret_access_key not in logged


# -- the signer, against AWS's published examples ---------------------------------------------
# "Authenticating Requests: Using the Authorization Header (AWS Signature Version 4)", Amazon S3 API
# Reference: the example credentials, bucket and time, and the signatures the page gives.
EXAMPLE = SigV4Signer("AKIAIOSFODNN7EXAMPLE", SecretStr("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"), "us-east-1")
EXAMPLE_TIME = dt.datetime(2013, 5, 24, tzinfo=dt.UTC)
EXAMPLE_SCOPE = "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"


def test_the_signer_gives_aws_published_signature_of_the_get_object_example() -> None:
    url = "https://examplebucket.s3.amazonaws.com/test.txt"
    headers = EXAMPLE.sign("GET", url, {"Range": "bytes=0-9"}, now=EXAMPLE_TIME)
    canonical, _ = EXAMPLE.canonical_request("GET", url, {k: v for k, v in headers.items() if k != "Authorization"},
                                                  hashlib.sha256(b"").hexdigest())  # fmt: skip
    assert canonical == (
        "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
        "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert EXAMPLE.string_to_sign("20130524T000000Z", canonical) == (
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
    )
    assert headers["Authorization"] == (
        f"AWS4-HMAC-SHA256 {EXAMPLE_SCOPE},SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )
    assert headers["x-amz-date"] == "20130524T000000Z" and headers["Host"] == "examplebucket.s3.amazonaws.com"


def test_the_signer_gives_aws_published_signatures_of_the_put_and_list_examples() -> None:
    body = b"Welcome to Amazon S3."
    put = EXAMPLE.sign(
        "PUT",
        "https://examplebucket.s3.amazonaws.com/" + uri_encode("test$file.text", slash=False),
        {"Date": "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY"},
        payload_sha256=hashlib.sha256(body).hexdigest(),
        now=EXAMPLE_TIME,
    )
    assert put["Authorization"].endswith(
        "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
        "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
    )
    listing = EXAMPLE.sign("GET", "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J", now=EXAMPLE_TIME)
    assert listing["Authorization"].endswith(
        "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
    )
    assert "wJalrXUtnFEMI" not in repr(EXAMPLE)
