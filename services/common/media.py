"""Media read from where a URI points, within what the operator allowed: frames' images for the
console (shrunk once into a bounded on-disk thumbnail cache), and the label images and probability
maps of segmentation projects for ingest and analysis. Every service reads through the same rules.

Allowed sources:

- local files (``file://`` URIs and plain paths) under one of ``console_media_roots``, after every
  symlink and ``..`` is resolved;
- ``http(s)://`` URLs whose host resolves only to public addresses (loopback, private, link-local
  and other special addresses are refused unless ``console_allow_private_http``), fetched without
  following redirects;
- ``s3://bucket/key`` objects of an S3-compatible store (AWS S3, MinIO, Ceph, GCS's interoperability
  API), from the buckets named in ``console_s3_buckets`` only, read with SigV4-signed GETs from the
  operator's endpoint (:mod:`shoal.common.objectstore`), with the size limit, timeout and no
  redirects of http(s);

anything else (other schemes, buckets that are not named) is refused with the reason.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import logging
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import requests
from PIL import Image, UnidentifiedImageError

from shoal.common.objectstore import ObjectMissing, ObjectRefused, S3Reader

if TYPE_CHECKING:
    from shoal.common.settings import ShoalSettings

log = logging.getLogger(__name__)

#: the longest side of a thumbnail, in pixels
THUMB_SIZE = 320
_CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
}


class MediaRefused(Exception):
    """The media URI points where the console may not read (403)."""


class MediaMissing(Exception):
    """The media cannot be read: no such file, an unreachable host, not an image (404)."""


@dataclass(frozen=True)
class Media:
    body: bytes
    content_type: str


def reader(settings: ShoalSettings, cache_dir: Path | None = None) -> MediaReader:
    """The reader the settings allow (``console_media_roots``, ``console_allow_private_http``,
    ``console_media_max_mb``, ``console_s3_*``); thumbnails cached under ``cache_dir`` if given."""
    return MediaReader(
        settings.console_media_roots or [str(settings.data_dir / "media")],
        allow_private_http=settings.console_allow_private_http,
        max_bytes=settings.console_media_max_mb * 1024 * 1024,
        cache_dir=cache_dir,
        cache_max_bytes=settings.console_cache_max_mb * 1024 * 1024,
        s3=S3Reader.from_settings(settings),
    )


class MediaReader:
    def __init__(
        self,
        roots: list[str],
        *,
        allow_private_http: bool = False,
        max_bytes: int = 64 * 1024 * 1024,
        cache_dir: Path | None = None,
        cache_max_bytes: int = 512 * 1024 * 1024,
        timeout_seconds: float = 10.0,
        s3: S3Reader | None = None,
    ) -> None:
        self.roots = [Path(r).resolve() for r in roots]
        self.s3 = s3 if s3 is not None else S3Reader()  # no bucket named: s3:// is refused
        self.allow_private_http = allow_private_http
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds
        self.cache = ThumbnailCache(cache_dir, cache_max_bytes) if cache_dir is not None else None

    # -- reading --------------------------------------------------------------------------
    def read(self, uri: str) -> bytes:
        """The bytes at ``uri``; MediaRefused or MediaMissing otherwise."""
        if not uri:
            raise MediaMissing("the frame has no media URI")
        parts = urlsplit(uri)
        scheme = parts.scheme.lower()
        if scheme in ("", "file"):
            return self._read_file(unquote(parts.path) if scheme == "file" else uri)
        if scheme in ("http", "https"):
            return self._read_http(uri, parts.hostname or "", parts.port or (443 if scheme == "https" else 80))
        if scheme == "s3":
            return self._read_s3(uri)
        raise MediaRefused(f"media at {scheme}:// cannot be read by the console (local files, http(s) and s3:// only)")

    def local_path(self, path: str) -> Path:
        """``path`` resolved (symlinks too); MediaRefused unless it lies under an allowed root."""
        if not self.roots:
            raise MediaRefused("no media folder is allowed (set SHOAL_CONSOLE_MEDIA_ROOTS)")
        if "\x00" in path:
            raise MediaRefused("the media path holds a NUL character")
        resolved = Path(os.path.realpath(path))
        if not any(resolved == root or resolved.is_relative_to(root) for root in self.roots):
            raise MediaRefused("the media file lies outside the folders the console may read")
        return resolved

    def _read_file(self, path: str) -> bytes:
        resolved = self.local_path(path)
        try:
            size = resolved.stat().st_size
            if size > self.max_bytes:
                raise MediaMissing(f"the media file is {size} bytes, more than the {self.max_bytes} allowed")
            return resolved.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise MediaMissing("the media file does not exist") from exc
        except PermissionError as exc:
            raise MediaMissing("the media file cannot be read") from exc

    def _read_http(self, url: str, host: str, port: int) -> bytes:
        if not host:
            raise MediaRefused("the media URL names no host")
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise MediaMissing(f"the media host {host} cannot be resolved") from exc
        if not self.allow_private_http:
            for info in infos:
                addr = ipaddress.ip_address(info[4][0])
                if not addr.is_global or addr.is_multicast:
                    raise MediaRefused(
                        f"the media host {host} is a private or local address; the console fetches only public "
                        "addresses (SHOAL_CONSOLE_ALLOW_PRIVATE_HTTP allows others)"
                    )
        try:
            with requests.get(url, timeout=self.timeout_seconds, stream=True, allow_redirects=False) as resp:
                if resp.status_code != 200:
                    raise MediaMissing(f"the media URL answered HTTP {resp.status_code}")
                body = bytearray()
                for chunk in resp.iter_content(64 * 1024):
                    body.extend(chunk)
                    if len(body) > self.max_bytes:
                        raise MediaMissing(f"the media is larger than the {self.max_bytes} bytes allowed")
                return bytes(body)
        except requests.RequestException as exc:
            raise MediaMissing(f"the media URL cannot be fetched ({type(exc).__name__})") from exc

    def _read_s3(self, uri: str) -> bytes:
        # The endpoint is the operator's, so the private-address rule of http(s) does not apply to it.
        try:
            return self.s3.read(uri, max_bytes=self.max_bytes, timeout=self.timeout_seconds)
        except ObjectRefused as exc:
            raise MediaRefused(str(exc)) from exc
        except ObjectMissing as exc:
            raise MediaMissing(str(exc)) from exc

    # -- images ---------------------------------------------------------------------------
    def image(self, uri: str, *, thumbnail: bool) -> Media:
        """The image at ``uri``, as stored, or as a thumbnail made once and cached."""
        if thumbnail and self.cache is not None:
            key = hashlib.sha256(f"{THUMB_SIZE}\x00{uri}".encode()).hexdigest()
            cached = self.cache.get(key)
            if cached is not None:
                return Media(cached, "image/png" if cached[:4] == b"\x89PNG" else "image/jpeg")
            media = _thumbnail(self.read(uri))
            self.cache.put(key, media.body)
            return media
        if thumbnail:
            return _thumbnail(self.read(uri))
        body = self.read(uri)
        try:
            with Image.open(io.BytesIO(body)) as img:
                kind = img.format or ""
        except (UnidentifiedImageError, OSError) as exc:
            raise MediaMissing("the media is not an image the console can show") from exc
        content_type = _CONTENT_TYPES.get(kind)
        if content_type is None:  # e.g. TIFF: browsers cannot show it, so convert
            return _thumbnail(body, size=None)
        return Media(body, content_type)


def _thumbnail(body: bytes, size: int | None = THUMB_SIZE) -> Media:
    try:
        with Image.open(io.BytesIO(body)) as img:
            img.load()
            if size is not None:
                img.thumbnail((size, size))
            out = io.BytesIO()
            if img.mode in ("RGBA", "LA", "P", "1", "I", "I;16", "F"):
                img.convert("RGBA").save(out, "PNG", optimize=True)
                return Media(out.getvalue(), "image/png")
            img.convert("RGB").save(out, "JPEG", quality=85)
            return Media(out.getvalue(), "image/jpeg")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise MediaMissing("the media is not an image the console can show") from exc


class ThumbnailCache:
    """Files under ``root`` named by key, at most ``max_bytes`` in all: when a write goes over,
    the least recently read files are removed."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._total: int | None = None

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            body = path.read_bytes()
        except OSError:
            return None
        try:
            os.utime(path)  # recency for eviction
        except OSError:
            pass
        return body

    def put(self, key: str, body: bytes) -> None:
        if len(body) > self.max_bytes:
            return
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(body)
            tmp.replace(path)
        except OSError as exc:  # a full or read-only disk: serve without caching
            log.warning("the thumbnail cache under %s cannot be written: %s", self.root, exc)
            return
        with self._lock:
            if self._total is None:
                self._total = self.size()
            else:
                self._total += len(body)
            if self._total > self.max_bytes:
                self._total = self._evict()

    def files(self) -> list[Path]:
        return [p for p in self.root.glob("*/*") if p.is_file() and not p.name.endswith(".tmp")]

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.files())

    def _evict(self) -> int:
        entries = []
        for p in self.files():
            try:
                st = p.stat()
            except OSError:
                continue
            entries.append((st.st_mtime, st.st_size, p))
        entries.sort()
        total = sum(size for _, size, _ in entries)
        target = int(self.max_bytes * 0.9)
        for _, size, p in entries:
            if total <= target:
                break
            try:
                p.unlink()
                total -= size
            except OSError:
                pass
        return total
