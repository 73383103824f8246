"""The console's HTTP routes.

- ``GET /`` and ``/static/...``: the app (plain ES modules, styles and icons, all shipped in the
  package; nothing is loaded from elsewhere).
- ``GET|POST|DELETE /api/session``: who is signed in, sign in with an API key, sign out. The key
  lives in an HttpOnly, SameSite=Strict cookie (Secure when TLS is on), never in a URL or in
  the page's storage.
- ``POST /api/rpc/<service>/<Method>``: one unary call of the gRPC API, as the signed-in key.
- ``GET /api/jobs/<service>/<project>/<job_id>/events``: a job's progress as server-sent events,
  until it finishes.
- ``GET /media/<project>/<dataset>/<frame_id>?size=thumb|full``: a frame's image, after the
  services confirm the key may see the frame; with ``camera=<name>``, that camera image of a point
  cloud; a point cloud without it gets its cloud seen from above, an audio clip its spectrogram.
- ``GET /clip/<project>/<dataset>/<frame_id>``: an audio clip's bytes, for the page's player (byte
  ranges answered, so it can seek).
- ``GET /api/points/<project>/<dataset>/<frame_id>``: a point cloud's points, at most 200,000
  (sampled), as little-endian float32 x, y, z, intensity; ``X-Shoal-Points-Total`` says how many the
  cloud has.
- ``GET /api/sound/<project>/<dataset>/<frame_id>``: an audio clip's waveform and spectrogram (JSON,
  see :func:`shoal.console.scenes.sound_view`).
- ``GET /healthz`` (the process answers) and ``/readyz`` (the services answer).

Every state-changing request (any method but GET and HEAD) must carry the ``X-CSRF-Token`` header
equal to the ``shoal_csrf`` cookie (double submit), and an ``Origin`` header, when the browser
sends one, naming this host.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from shoal.common.media import THUMB_SIZE, Media, MediaMissing, MediaRefused
from shoal.common.media import reader as media_reader
from shoal.common.pointclouds import PointCloudError
from shoal.common.settings import SERVICE_NAMES, ShoalSettings, api_key_problem
from shoal.console import scenes
from shoal.console.backend import Backend, CallError

log = logging.getLogger(__name__)

KEY_COOKIE = "shoal_key"
CSRF_COOKIE = "shoal_csrf"
CSRF_HEADER = "x-csrf-token"
#: largest JSON body the console accepts (a segment of 100,000 frame ids fits)
MAX_BODY_BYTES = 8 * 1024 * 1024
#: how often a job's state is read while its events are streamed
JOB_POLL_SECONDS = 0.5
_TERMINAL = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"}
_SAFE_METHODS = {"GET", "HEAD"}

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

PLACEHOLDER_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="160" height="120" viewBox="0 0 160 120">'
    '<rect width="160" height="120" fill="#e6e6e6"/><path d="M50 85l25-30 18 20 12-12 20 22z" fill="#b3b3b3"/>'
    '<text x="80" y="108" font-family="sans-serif" font-size="11" text-anchor="middle" fill="#555">{text}</text></svg>'
)


def static_dir() -> Path:
    return Path(str(resources.files("shoal.console") / "static"))


class Console:
    """The console's state: the channels to the services, the media reader, cookie policy."""

    def __init__(self, settings: ShoalSettings, backend: Backend) -> None:
        self.settings = settings
        self.backend = backend
        cache_dir = settings.console_cache_dir or (settings.data_dir / "console-cache")
        self.media = media_reader(settings, cache_dir)
        secure = settings.console_cookie_secure
        self.secure_cookies = settings.tls_enabled if secure is None else secure

    def scene_image(self, uri: str, *, thumbnail: bool) -> Media:
        """A point cloud seen from above, as a PNG (kept in the thumbnail cache)."""
        size = THUMB_SIZE if thumbnail else 2 * THUMB_SIZE
        return self._drawn(f"bev\x00{size}\x00{uri}", lambda: scenes.bev_png(self.media.read(uri), uri, size=size))

    def sound_image(self, uri: str, *, thumbnail: bool) -> Media:
        """An audio clip's spectrogram, as a PNG (kept in the thumbnail cache)."""
        size = THUMB_SIZE if thumbnail else 2 * THUMB_SIZE
        return self._drawn(
            f"spectrogram\x00{size}\x00{uri}", lambda: scenes.spectrogram_png(self.media.read(uri), size=size)
        )

    def _drawn(self, name: str, draw: Callable[[], bytes]) -> Media:
        cache = self.media.cache
        key = hashlib.sha256(name.encode()).hexdigest()
        body = cache.get(key) if cache is not None else None
        if body is None:
            body = draw()
            if cache is not None:
                cache.put(key, body)
        return Media(body, "image/png")

    # -- cookies ----------------------------------------------------------------------------
    def set_cookie(self, response: Response, name: str, value: str, *, http_only: bool) -> None:
        response.set_cookie(
            name, value, path="/", httponly=http_only, secure=self.secure_cookies, samesite="strict", max_age=None
        )

    def clear_cookie(self, response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", secure=self.secure_cookies, httponly=True, samesite="strict")


def _error(status: int, message: str, code: str = "", **more: str) -> JSONResponse:
    return JSONResponse({"error": message, "code": code or _code_of(status), **more}, status_code=status)


def _code_of(status: int) -> str:
    return {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}.get(
        status, "ERROR"
    )


def _key(request: Request) -> str:
    return request.cookies.get(KEY_COOKIE, "")


async def _json_body(request: Request) -> dict[str, Any]:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise CallError(413, "RESOURCE_EXHAUSTED", f"the request body is larger than {MAX_BODY_BYTES} bytes", "")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise CallError(413, "RESOURCE_EXHAUSTED", f"the request body is larger than {MAX_BODY_BYTES} bytes", "")
    if not body:
        return {}
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise CallError(400, "INVALID_ARGUMENT", f"the request body is not JSON: {exc}", "") from exc
    if not isinstance(data, dict):
        raise CallError(400, "INVALID_ARGUMENT", "the request body must be a JSON object", "")
    return data


# -- routes -------------------------------------------------------------------------------------
async def index(request: Request) -> Response:
    console: Console = request.app.state.console
    response = FileResponse(static_dir() / "index.html", headers={"Cache-Control": "no-store"})
    if not request.cookies.get(CSRF_COOKIE):
        console.set_cookie(response, CSRF_COOKIE, secrets.token_urlsafe(32), http_only=False)
    return response


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """200 while any service answers: with one of them down the console still serves its pages and
    says which service is missing; 503 only when it can reach none (then it can show nothing)."""
    console: Console = request.app.state.console
    status = await run_in_threadpool(console.backend.ready)
    ok = any(s == "SERVING" for s in status.values())
    every = all(s == "SERVING" for s in status.values())
    return JSONResponse({"ready": ok, "all_serving": every, "services": status}, status_code=200 if ok else 503)


async def session_get(request: Request) -> Response:
    console: Console = request.app.state.console
    key = _key(request)
    if not key:
        return JSONResponse({"signed_in": False})
    try:
        projects = await run_in_threadpool(console.backend.call, "ingest", "ListProjects", {}, key)
    except CallError as exc:
        if exc.http_status == 401:
            response = JSONResponse({"signed_in": False, "error": exc.message})
            console.clear_cookie(response, KEY_COOKIE)
            return response
        return JSONResponse(exc.body(), status_code=exc.http_status)
    return JSONResponse({"signed_in": True, "key_id": _key_id(key), "projects": projects.get("projects", [])})


def _key_id(key: str) -> str:
    parts = key.split("_")
    return parts[1] if len(parts) >= 3 and key.startswith("shoal_") else ""


async def session_post(request: Request) -> Response:
    console: Console = request.app.state.console
    body = await _json_body(request)
    key = body.get("api_key")
    if not isinstance(key, str) or not key.strip():
        return _error(400, "enter an API key", field="api_key")
    key = key.strip()
    problem = api_key_problem(key)
    if problem is not None and not console.settings.insecure_dev_mode:
        return _error(400, f"this is not an API key: {problem}", field="api_key")
    try:
        projects = await run_in_threadpool(console.backend.call, "ingest", "ListProjects", {}, key)
    except CallError as exc:
        if exc.http_status == 401:
            return _error(401, "the key was refused: it is unknown, revoked or mistyped", field="api_key")
        return JSONResponse(exc.body(), status_code=exc.http_status)
    response = JSONResponse({"signed_in": True, "key_id": _key_id(key), "projects": projects.get("projects", [])})
    console.set_cookie(response, KEY_COOKIE, key, http_only=True)
    # a new CSRF token with each sign-in, so a token seen before it is worth nothing after
    console.set_cookie(response, CSRF_COOKIE, secrets.token_urlsafe(32), http_only=False)
    return response


async def session_delete(request: Request) -> Response:
    console: Console = request.app.state.console
    response = JSONResponse({"signed_in": False})
    console.clear_cookie(response, KEY_COOKIE)
    return response


async def rpc(request: Request) -> Response:
    console: Console = request.app.state.console
    key = _key(request)
    if not key:
        return _error(401, "sign in first", "UNAUTHENTICATED")
    service, method = request.path_params["service"], request.path_params["method"]
    if service not in SERVICE_NAMES:
        return _error(404, f"no service {service!r}; the services are {', '.join(SERVICE_NAMES)}")
    body = await _json_body(request)
    started = time.perf_counter()
    result = await run_in_threadpool(console.backend.call, service, method, body, key)
    elapsed = (time.perf_counter() - started) * 1000
    return JSONResponse(result, headers={"Server-Timing": f"grpc;dur={elapsed:.1f}"})


async def job_events(request: Request) -> Response:
    console: Console = request.app.state.console
    key = _key(request)
    if not key:
        return _error(401, "sign in first", "UNAUTHENTICATED")
    service = request.path_params["service"]
    project, job_id = request.path_params["project"], request.path_params["job_id"]
    if service not in ("analysis", "sampler", "labeling_bridge"):
        return _error(404, f"the {service} service runs no jobs")
    # the first read answers errors (unknown job, foreign project) as a status, not as an event
    first = await run_in_threadpool(
        console.backend.call, service, "GetJob", {"project": project, "job_id": job_id}, key
    )

    async def events() -> AsyncIterator[str]:
        # waits on the event loop and takes a worker thread only to read: an open stream holds no
        # thread between polls, so many open pages cost little
        job = first.get("job", {})
        last = None
        while True:
            text = json.dumps(job, sort_keys=True)
            if text != last:
                yield f"event: job\ndata: {text}\n\n"
                last = text
            if job.get("state") in _TERMINAL:
                yield "event: end\ndata: {}\n\n"
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(JOB_POLL_SECONDS)
            try:
                resp = await run_in_threadpool(
                    console.backend.call, service, "GetJob", {"project": project, "job_id": job_id}, key
                )
            except CallError as exc:
                yield f"event: error\ndata: {json.dumps(exc.body())}\n\n"
                return
            job = resp.get("job", {})

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


async def _datapoint(request: Request, key: str) -> dict[str, Any] | None:
    """The frame the path names, as the key may see it (QueryDatapoints): the services decide whether the
    key may see it, and say where its media is. None when there is no such frame; CallError when refused."""
    console: Console = request.app.state.console
    project, dataset, frame_id = (request.path_params[k] for k in ("project", "dataset", "frame_id"))
    query = {
        "project": project,
        "dataset": dataset,
        "filter": {"all": [{"field": "frame_id", "equals": {"string_value": frame_id}}]},
        "page": {"page_size": 1},
    }
    found = await run_in_threadpool(console.backend.call, "analysis", "QueryDatapoints", query, key)
    points = found.get("datapoints", [])
    return points[0] if points else None


async def media(request: Request) -> Response:
    console: Console = request.app.state.console
    key = _key(request)
    if not key:
        return _placeholder(401, "sign in first")
    dataset, frame_id = request.path_params["dataset"], request.path_params["frame_id"]
    thumbnail = request.query_params.get("size", "thumb") != "full"
    camera = request.query_params.get("camera")
    try:
        point = await _datapoint(request, key)
    except CallError as exc:
        return _placeholder(exc.http_status, exc.code.lower().replace("_", " "))
    if point is None:
        return _placeholder(404, "no such frame")
    uri = point.get("media_uri", "")
    kind = point.get("media_type", "")
    if camera is not None:
        uri = next((c.get("uri", "") for c in point.get("cameras", []) if c.get("name") == camera), "")
        if not uri:
            return _placeholder(404, "no such camera")
    try:
        if camera is None and kind == "MEDIA_TYPE_POINT_CLOUD":
            image = await run_in_threadpool(console.scene_image, uri, thumbnail=thumbnail)
        elif camera is None and kind == "MEDIA_TYPE_AUDIO":
            image = await run_in_threadpool(console.sound_image, uri, thumbnail=thumbnail)
        else:
            image = await run_in_threadpool(console.media.image, uri, thumbnail=thumbnail)
    except MediaRefused as exc:
        log.info("media of frame %s/%s refused: %s", dataset, frame_id, exc)
        return _placeholder(403, "not allowed", reason=str(exc))
    except MediaMissing as exc:
        return _placeholder(404, "no image", reason=str(exc))
    except (PointCloudError, scenes.AudioError) as exc:
        return _placeholder(404, "unreadable", reason=str(exc))
    return Response(image.body, media_type=image.content_type, headers={"Cache-Control": "private, max-age=300"})


async def _scene_media(request: Request) -> tuple[str, bytes] | Response:
    """The URI and bytes of the media of the frame the path names, or the error answer (JSON)."""
    console: Console = request.app.state.console
    key = _key(request)
    if not key:
        return _error(401, "sign in first", "UNAUTHENTICATED")
    point = await _datapoint(request, key)
    if point is None:
        return _error(404, "there is no such frame, or this key may not see it")
    uri = point.get("media_uri", "")
    try:
        return uri, await run_in_threadpool(console.media.read, uri)
    except MediaRefused as exc:
        return _error(403, f"the console may not read this frame's media: {exc}", "PERMISSION_DENIED")
    except MediaMissing as exc:
        return _error(404, f"the frame's media cannot be read: {exc}")


async def points(request: Request) -> Response:
    got = await _scene_media(request)
    if isinstance(got, Response):
        return got
    uri, data = got
    try:
        cloud = await run_in_threadpool(scenes.point_cloud, data, uri)
    except PointCloudError as exc:
        return _error(422, f"the frame's point cloud cannot be read: {exc}", "INVALID_ARGUMENT")
    headers = {"Cache-Control": "private, max-age=300", "X-Shoal-Points-Total": str(cloud.total),
               "X-Shoal-Points": str(cloud.sent)}  # fmt: skip
    return Response(cloud.body, media_type="application/octet-stream", headers=headers)


async def sound(request: Request) -> Response:
    got = await _scene_media(request)
    if isinstance(got, Response):
        return got
    _, data = got

    def view() -> dict[str, Any]:
        samples, rate = scenes.decode_audio(data)
        return scenes.sound_view(samples, rate)

    try:
        body = await run_in_threadpool(view)
    except scenes.AudioError as exc:
        return _error(422, str(exc), "INVALID_ARGUMENT")
    return JSONResponse(body, headers={"Cache-Control": "private, max-age=300"})


async def clip(request: Request) -> Response:
    """An audio clip's bytes; a ``Range: bytes=a-b`` request gets that part (206), as media players ask."""
    got = await _scene_media(request)
    if isinstance(got, Response):
        return got
    uri, data = got
    headers = {"Cache-Control": "private, max-age=300", "Accept-Ranges": "bytes"}
    kind = scenes.audio_content_type(data, uri)
    wanted = _byte_range(request.headers.get("range", ""), len(data))
    if wanted is None:
        return Response(data, media_type=kind, headers=headers)
    if wanted == "unsatisfiable":
        return Response(b"", status_code=416, headers={**headers, "Content-Range": f"bytes */{len(data)}"})
    start, end = wanted
    headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
    return Response(data[start : end + 1], status_code=206, media_type=kind, headers=headers)


def _byte_range(header: str, size: int) -> tuple[int, int] | str | None:
    """The first range of a ``Range: bytes=...`` header as (first, last) byte, "unsatisfiable", or None
    (no range, or one this does not answer: the whole body then)."""
    if not header.startswith("bytes=") or size <= 0:
        return None
    first = header[6:].split(",", 1)[0].strip()
    a, sep, b = first.partition("-")
    if not sep:
        return None
    try:
        if not a:  # the last b bytes
            n = int(b)
            return (max(0, size - n), size - 1) if n > 0 else "unsatisfiable"
        start = int(a)
        end = min(int(b), size - 1) if b else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return "unsatisfiable"
    return start, end


def _placeholder(status: int, text: str, reason: str = "") -> Response:
    headers = {"Cache-Control": "no-store"}
    if reason:
        headers["X-Shoal-Media-Error"] = reason.encode("ascii", "replace").decode()[:300]
    safe = "".join(ch for ch in text if ch.isalnum() or ch in " -")
    return Response(PLACEHOLDER_SVG.format(text=safe), status_code=status, media_type="image/svg+xml", headers=headers)


# -- middleware ----------------------------------------------------------------------------------
class Guard(BaseHTTPMiddleware):
    """Security headers on every answer; CSRF and origin checks on every state-changing request;
    CallError and any unexpected error as a JSON answer, never a traceback."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.method not in _SAFE_METHODS:
            refusal = self._csrf_refusal(request)
            if refusal is not None:
                return self._headers(_error(403, refusal, "CSRF"))
        try:
            response = await call_next(request)
        except CallError as exc:
            response = JSONResponse(exc.body(), status_code=exc.http_status)
        except Exception:
            log.exception("console request %s %s failed", request.method, request.url.path)
            response = _error(500, "the console failed to answer; the details are in its log", "INTERNAL")
        return self._headers(response)

    @staticmethod
    def _csrf_refusal(request: Request) -> str | None:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        header = request.headers.get(CSRF_HEADER, "")
        if not cookie or not header or not hmac.compare_digest(cookie.encode(), header.encode()):
            return "missing or wrong CSRF token: reload the page and try again"
        origin = request.headers.get("origin")
        if origin is not None:
            host = request.headers.get("host", "")
            if origin.split("://", 1)[-1] != host:
                return "the request comes from another site"
        return None

    @staticmethod
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if request_is_api(response):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def request_is_api(response: Response) -> bool:
    return response.media_type == "application/json"


def create_app(settings: ShoalSettings, backend: Backend) -> Starlette:
    console = Console(settings, backend)
    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/api/session", session_get, methods=["GET"]),
        Route("/api/session", session_post, methods=["POST"]),
        Route("/api/session", session_delete, methods=["DELETE"]),
        Route("/api/rpc/{service}/{method}", rpc, methods=["POST"]),
        Route("/api/jobs/{service}/{project}/{job_id}/events", job_events),
        Route("/media/{project}/{dataset}/{frame_id:path}", media),
        Route("/clip/{project}/{dataset}/{frame_id:path}", clip),
        Route("/api/points/{project}/{dataset}/{frame_id:path}", points),
        Route("/api/sound/{project}/{dataset}/{frame_id:path}", sound),
        Mount("/static", app=StaticFiles(directory=static_dir()), name="static"),
    ]
    # gzip: a map viewport of 20,000 points is 1.7 MB of JSON and 0.4 MB compressed (event streams
    # are left as they are)
    app = Starlette(
        routes=routes, middleware=[Middleware(GZipMiddleware, minimum_size=2048, compresslevel=4), Middleware(Guard)]
    )
    app.state.console = console
    return app
