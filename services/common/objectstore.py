"""Frames' media in S3 and S3-compatible object stores (AWS S3, MinIO, Ceph's RADOS Gateway, Google
Cloud Storage through its XML interoperability API), read with requests signed by AWS Signature
Version 4.

- :class:`SigV4Signer` signs one request (any method: GET and HEAD, and PUT with its payload's hash):
  the canonical request, the string to sign, the signing key derived from the secret for the day,
  region and service, and the ``Authorization`` header, as in AWS's "Authenticating Requests
  (AWS Signature Version 4)" for S3, with the payload's SHA-256 in ``x-amz-content-sha256``.
- :class:`S3Reader` reads ``s3://bucket/key`` from the operator's endpoint, only from the buckets
  the operator named: path-style URLs (``<endpoint>/<bucket>/<key>``) on a configured endpoint,
  virtual-hosted ones (``https://<bucket>.s3.<region>.amazonaws.com/<key>``) on AWS, redirects
  never followed, at most ``max_bytes`` read. It refuses (:class:`ObjectRefused`) what the
  console may not read and says why an object cannot be read (:class:`ObjectMissing`); a store
  that refuses the credentials is logged with its error code, never with the secret.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

import requests
from pydantic import SecretStr

if TYPE_CHECKING:
    from shoal.common.settings import ShoalSettings

log = logging.getLogger(__name__)

ALGORITHM = "AWS4-HMAC-SHA256"
#: SHA-256 of an empty payload (a GET's or a HEAD's)
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: the S3 error codes that mean the store did not accept the console's credentials
CREDENTIAL_ERRORS = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "AuthorizationHeaderMalformed",
        "AllAccessDisabled",
    }
)
_SPACES = re.compile(r"\s+")
_DNS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_CODE = re.compile(r"<Code>([^<]{1,200})</Code>")
_MESSAGE = re.compile(r"<Message>([^<]{1,1000})</Message>")
_UNRESERVED = "-_.~"


class ObjectRefused(Exception):
    """The console may not read this object (a bucket the operator did not name, a malformed URI)."""


class ObjectMissing(Exception):
    """The object cannot be read: no such object, credentials refused, an unreachable store."""


def uri_encode(text: str, *, slash: bool = True) -> str:
    """AWS's UriEncode: every byte but ``A-Za-z0-9-_.~`` percent-encoded in upper-case hex, and
    ``/`` too unless ``slash`` is false (object key names keep theirs)."""
    return quote(text, safe=_UNRESERVED if slash else _UNRESERVED + "/")


class SigV4Signer:
    """Signs requests with AWS Signature Version 4 (header-based, ``AWS4-HMAC-SHA256``).

    Parameters
    ----------
    access_key_id, secret_access_key:
        The credentials; the secret is only read to derive the day's signing key.
    region:
        The region in the credential scope (``us-east-1``; ``auto`` for some compatible stores).
    service:
        The service in the credential scope, ``s3``.
    """

    def __init__(self, access_key_id: str, secret_access_key: SecretStr, region: str, service: str = "s3") -> None:
        self.access_key_id = access_key_id
        self._secret = secret_access_key
        self.region = region
        self.service = service

    def __repr__(self) -> str:  # never the secret
        return f"SigV4Signer(access_key_id={self.access_key_id!r}, region={self.region!r}, service={self.service!r})"

    # -- the steps, each checkable against AWS's published examples ------------------------
    @staticmethod
    def canonical_request(method: str, url: str, headers: Mapping[str, str], payload_sha256: str) -> tuple[str, str]:
        """The canonical request of ``method url`` with ``headers`` (every one is signed, so pass
        ``host``, ``x-amz-date`` and ``x-amz-content-sha256`` in them), and the signed header list.

        The path is used as it will be sent (S3 encodes it once, so it must already be UriEncoded);
        the query's names and values are UriEncoded and sorted."""
        parts = urlsplit(url)
        path = parts.path or "/"
        pairs = []
        for item in parts.query.split("&") if parts.query else []:
            name, _, value = item.partition("=")
            pairs.append((uri_encode(unquote(name)), uri_encode(unquote(value))))
        query = "&".join(f"{n}={v}" for n, v in sorted(pairs))
        canonical = sorted((name.strip().lower(), _SPACES.sub(" ", value.strip())) for name, value in headers.items())
        signed = ";".join(name for name, _ in canonical)
        lines = [method.upper(), path, query, *(f"{n}:{v}" for n, v in canonical), "", signed, payload_sha256]
        return "\n".join(lines), signed

    def scope(self, day: str) -> str:
        return f"{day}/{self.region}/{self.service}/aws4_request"

    def string_to_sign(self, amz_date: str, canonical_request: str) -> str:
        digest = hashlib.sha256(canonical_request.encode()).hexdigest()
        return "\n".join([ALGORITHM, amz_date, self.scope(amz_date[:8]), digest])

    def signing_key(self, day: str) -> bytes:
        key = _hmac(("AWS4" + self._secret.get_secret_value()).encode(), day)
        for part in (self.region, self.service, "aws4_request"):
            key = _hmac(key, part)
        return key

    # -- the whole ---------------------------------------------------------------------------
    def sign(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        *,
        payload_sha256: str = EMPTY_SHA256,
        now: dt.datetime | None = None,
    ) -> dict[str, str]:
        """The headers to send with ``method url``: ``headers``, ``Host``, ``x-amz-date``,
        ``x-amz-content-sha256`` and ``Authorization``.

        ``url``'s path must be UriEncoded (see :func:`uri_encode`); ``payload_sha256`` is the hex
        SHA-256 of the body (``UNSIGNED-PAYLOAD`` is allowed by S3 over TLS); ``now`` (UTC) is the
        request's time, the current one unless given."""
        when = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        amz_date = when.strftime("%Y%m%dT%H%M%SZ")
        out = {name: value for name, value in (headers or {}).items() if name.lower() != "authorization"}
        lower = {name.lower() for name in out}
        if "host" not in lower:
            out["Host"] = _host_header(url)
        if "x-amz-date" not in lower:
            out["x-amz-date"] = amz_date
        else:
            amz_date = next(v for n, v in out.items() if n.lower() == "x-amz-date")
        if "x-amz-content-sha256" not in lower:
            out["x-amz-content-sha256"] = payload_sha256
        canonical, signed = self.canonical_request(method, url, out, payload_sha256)
        to_sign = self.string_to_sign(amz_date, canonical)
        signature = hmac.new(self.signing_key(amz_date[:8]), to_sign.encode(), hashlib.sha256).hexdigest()
        out["Authorization"] = (
            f"{ALGORITHM} Credential={self.access_key_id}/{self.scope(amz_date[:8])},"
            f"SignedHeaders={signed},Signature={signature}"
        )
        return out


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _host_header(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key). The key is taken as written (``?`` and ``#`` are part of
    it, nothing is percent-decoded), as the AWS CLI writes S3 URIs."""
    if not uri.lower().startswith("s3://"):
        raise ObjectRefused("the media URI is not an s3:// URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ObjectRefused("the s3:// media URI names no bucket")
    if not key:
        raise ObjectRefused(f"the media URI s3://{bucket}/ names no object key")
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in key):
        raise ObjectRefused("the s3:// media key holds a control character")
    if any(segment in (".", "..") for segment in key.split("/")):
        # clients and servers resolve dot segments in a path-style URL: /allowed/../other/key would
        # read another bucket
        raise ObjectRefused("the s3:// media key holds a '.' or '..' segment")
    return bucket, key


class S3Reader:
    """Reads objects from one S3-compatible endpoint, only from ``buckets``.

    Parameters
    ----------
    endpoint_url:
        ``http(s)://host[:port][/prefix]`` of the store (path-style addressing); empty: AWS S3's
        regional endpoint ``https://s3.<region>.amazonaws.com`` (virtual-hosted addressing, and
        path-style for bucket names that are not one DNS label, such as names with dots, which a
        wildcard certificate does not cover).
    region:
        The region of the signature's credential scope (and of AWS's endpoint).
    access_key_id, secret_access_key:
        The credentials; both empty: unsigned requests, for buckets that allow anonymous reads.
    buckets:
        The buckets the console may read; empty: none.
    """

    def __init__(
        self,
        *,
        endpoint_url: str = "",
        region: str = "us-east-1",
        access_key_id: str = "",
        secret_access_key: SecretStr | None = None,
        buckets: Iterable[str] = (),
    ) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        self.region = region
        self.buckets = frozenset(buckets)
        secret = secret_access_key.get_secret_value() if secret_access_key is not None else ""
        self.signer = SigV4Signer(access_key_id, SecretStr(secret), region) if access_key_id or secret else None
        self._local = threading.local()

    @classmethod
    def from_settings(cls, settings: ShoalSettings) -> S3Reader:
        return cls(
            endpoint_url=settings.console_s3_endpoint_url,
            region=settings.console_s3_region,
            access_key_id=settings.console_s3_access_key_id,
            secret_access_key=settings.console_s3_secret_access_key,
            buckets=settings.console_s3_buckets,
        )

    def __repr__(self) -> str:
        return f"S3Reader(endpoint={self.where!r}, region={self.region!r}, buckets={sorted(self.buckets)!r})"

    @property
    def where(self) -> str:
        return self.endpoint_url or f"https://s3.{self.region}.amazonaws.com"

    def object_url(self, bucket: str, key: str) -> str:
        """The URL of ``key`` in ``bucket``, its path UriEncoded as the signature wants it."""
        path = uri_encode(key, slash=False)
        if self.endpoint_url:
            return f"{self.endpoint_url}/{uri_encode(bucket)}/{path}"
        if not _DNS_BUCKET.match(bucket):  # dots (a wildcard certificate covers one label) or unusual names
            return f"https://s3.{self.region}.amazonaws.com/{uri_encode(bucket)}/{path}"
        return f"https://{bucket}.s3.{self.region}.amazonaws.com/{path}"

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:  # one per thread: the console reads media on a thread pool
            session = self._local.session = requests.Session()
        return session

    def request(self, method: str, url: str, *, timeout: float, stream: bool = False) -> requests.Response:
        """One request to the store, signed when there are credentials, redirects not followed."""
        headers = self.signer.sign(method, url) if self.signer is not None else {}
        return self._session().request(
            method, url, headers=headers, timeout=timeout, stream=stream, allow_redirects=False
        )

    def read(self, uri: str, *, max_bytes: int, timeout: float) -> bytes:
        """The bytes of the object at ``s3://bucket/key``; ObjectRefused or ObjectMissing otherwise."""
        bucket, key = parse_s3_uri(uri)
        if not self.buckets:
            raise ObjectRefused(
                "no bucket is allowed (set SHOAL_CONSOLE_S3_BUCKETS to the buckets the console may read)"
            )
        if bucket not in self.buckets:
            raise ObjectRefused(
                f"the bucket {bucket} is not one the console may read (SHOAL_CONSOLE_S3_BUCKETS names them)"
            )
        url = self.object_url(bucket, key)
        try:
            with self.request("GET", url, timeout=timeout, stream=True) as resp:
                if resp.status_code != 200:
                    raise self._failure(resp, bucket, key)
                length = resp.headers.get("Content-Length", "")
                if length.isdigit() and int(length) > max_bytes:
                    raise ObjectMissing(f"the object is {length} bytes, more than the {max_bytes} allowed")
                body = bytearray()
                for chunk in resp.iter_content(64 * 1024):
                    body.extend(chunk)
                    if len(body) > max_bytes:
                        raise ObjectMissing(f"the object is larger than the {max_bytes} bytes allowed")
                return bytes(body)
        except requests.RequestException as exc:
            raise ObjectMissing(f"the object store at {self.where} cannot be reached ({type(exc).__name__})") from exc

    def _failure(self, resp: requests.Response, bucket: str, key: str) -> ObjectMissing:
        status = resp.status_code
        code, message = _error_of(resp)
        where = f"s3://{bucket}/{key}"
        if status == 404 or code in ("NoSuchKey", "NoSuchBucket"):
            return ObjectMissing(f"no object {where} ({code or 'HTTP 404'})")
        if status in (401, 403) or code in CREDENTIAL_ERRORS:
            log.warning(
                "the object store at %s refused to let the console read %s: HTTP %s %s %s; check "
                "SHOAL_CONSOLE_S3_ACCESS_KEY_ID (%s), SHOAL_CONSOLE_S3_SECRET_ACCESS_KEY, SHOAL_CONSOLE_S3_REGION "
                "and the key's permissions on the bucket",
                self.where,
                where,
                status,
                code or "-",
                message[:200],
                self.signer.access_key_id if self.signer is not None else "unsigned requests",
            )
            return ObjectMissing(
                f"the object store refused the console's credentials for {where} ({code or f'HTTP {status}'})"
            )
        if 300 <= status < 400:
            return ObjectMissing(
                f"the object store answered HTTP {status} for {where}, a redirect the console does not follow "
                "(is SHOAL_CONSOLE_S3_REGION the bucket's region?)"
            )
        return ObjectMissing(f"the object store answered HTTP {status} for {where} ({code or 'no error code'})")


def _error_of(resp: requests.Response) -> tuple[str, str]:
    """The ``Code`` and ``Message`` of an S3 error answer, from its first 16 KiB (empty when it has
    none: HEAD answers carry no body)."""
    raw = bytearray()
    try:
        for chunk in resp.iter_content(4096):
            raw.extend(chunk)
            if len(raw) >= 16 * 1024:
                break
    except requests.RequestException:
        pass  # a broken answer: whatever arrived is all there is to quote
    text = raw.decode("utf-8", "replace")
    code, message = _CODE.search(text), _MESSAGE.search(text)
    return (code.group(1).strip() if code else ""), (message.group(1).strip() if message else "")
