"""Run a real Label Studio server for integration tests, from the ``label-studio`` package on PyPI.

Label Studio lives in its own venv (``.cache/label-studio-venv``, made by
``scripts/ensure-label-studio.sh``): its dependency tree must not meet the project's. The server runs as
``label-studio start`` on a free loopback port, with SQLite and every file in a fresh data directory::

    server = LabelStudioServer(venv_dir=default_venv_dir(repo_root), work_dir=tmp_path / "ls")
    with server:
        server.url        # http://127.0.0.1:<port>
        server.token      # a personal access token (a JWT refresh token)
        server.restart()  # same port, same data: projects, tasks and the token survive

Nothing leaves the machine: error reporting (Sentry), usage analytics, the PyPI version check and the
export converters' resource downloads are switched off, and feature flags are read offline. The
server's SSRF protection is off so that it may call webhooks on 127.0.0.1 (a test's listener).

Authentication is the one Label Studio 1.23 ships with: legacy tokens are disabled by default, and a
personal access token is a long-lived JWT refresh token, exchanged at ``POST /api/token/refresh/``
for an access token that lasts five minutes (``Authorization: Bearer <access>``). The harness creates
the admin user from ``LABEL_STUDIO_USERNAME``/``LABEL_STUDIO_PASSWORD``, logs in through the login
form like a browser (a Django session) and creates the personal access token with ``POST /api/token/``,
as the "Personal Access Token" page of the account settings does.

This module only needs the standard library. Everything the server prints goes to
``work_dir/label-studio.log``; start-up failures raise :class:`RuntimeError` quoting its last lines.
"""

from __future__ import annotations

import atexit
import contextlib
import http.cookiejar
import json
import logging
import os
import pathlib
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from types import TracebackType
from typing import IO, Any

from tests.harness._proc import HOST, LaunchLog, free_ports, port_is_bindable, signal_group
from tests.harness._wait import scaled, tree_cpu_seconds, wait_until
from tests.harness.reference_venv import cache_dir

__all__ = ["LabelStudioServer", "default_venv_dir"]

logger = logging.getLogger(__name__)

USERNAME = "admin@shoal.test"

_MAX_START_ATTEMPTS = 3  # a fresh port when the picked one got taken meanwhile

#: Environment of the server: nothing reaches the internet, webhooks may call loopback listeners.
_SERVER_ENV = {
    "DJANGO_DB": "sqlite",
    "SENTRY_DSN": "",
    "FRONTEND_SENTRY_DSN": "",
    "COLLECT_ANALYTICS": "false",
    "LATEST_VERSION_CHECK": "false",
    "CONVERTER_DOWNLOAD_RESOURCES": "false",
    "FEATURE_FLAGS_OFFLINE": "true",
    "SSRF_PROTECTION_ENABLED": "false",
    "DEBUG": "false",
    "LOG_LEVEL": "INFO",
    "PYTHONUNBUFFERED": "1",
}

_LIVE_SERVERS: set[LabelStudioServer] = set()


@atexit.register
def _stop_live_servers() -> None:  # a crashed test session must not leave servers behind
    for server in list(_LIVE_SERVERS):
        with contextlib.suppress(Exception):
            server.stop(timeout=5)


def default_venv_dir(repo_root: pathlib.Path) -> pathlib.Path:
    """Where scripts/ensure-label-studio.sh installs Label Studio (``SHOAL_CACHE_DIR`` moves it)."""
    return cache_dir(repo_root) / "label-studio-venv"


class LabelStudioServer:
    """One Label Studio server with an admin user and a personal access token.

    Attributes:
        url: base URL, without a trailing slash.
        token: the admin's personal access token (a JWT refresh token); never log it.
        username, password: the admin's credentials (the login form takes the email as username).
        log_file: everything the server printed.
    """

    def __init__(self, *, venv_dir: pathlib.Path, work_dir: pathlib.Path, username: str = USERNAME) -> None:
        self.venv_dir = pathlib.Path(venv_dir)
        self.work_dir = pathlib.Path(work_dir)
        self.data_dir = self.work_dir / "data"
        self.log_file = self.work_dir / "label-studio.log"
        self.username = username
        self.password = secrets.token_urlsafe(16)
        # Label Studio signs its JWTs with SECRET_KEY. Left unset, it generates one from a set of
        # characters that includes "$" and appends it to data/.env; a key starting with "$" is read
        # back on the next start as a reference to another variable, i.e. empty, so a new key is
        # generated and every token issued before the restart is refused (401). URL-safe characters
        # have no such meaning.
        self.secret_key = secrets.token_urlsafe(48)
        self.port: int | None = None
        self.token: str | None = None
        self.startup_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None
        self._log = LaunchLog(self.log_file)

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("LabelStudioServer.url read before start()")
        return f"http://{HOST}:{self.port}"

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 240.0) -> None:
        """Start the server on a free port, wait until it answers, create the access token.

        The wait ends when /health answers, when the server exits, or when it stops making progress (no
        output and no CPU time for a third of ``timeout``); ``timeout`` is a last resort. Both are multiplied
        by ``SHOAL_TEST_WAIT_SCALE``.

        Raises:
            RuntimeError: Label Studio is not installed, exited, stopped making progress or did not answer
                within the bound; the message quotes the server's log.
        """
        if self.is_running:
            return
        executable = self.venv_dir / "bin" / "label-studio"
        if not executable.exists():
            raise RuntimeError(
                f"Label Studio is not installed in {self.venv_dir}: run scripts/ensure-label-studio.sh "
                "(make test does this)"
            )
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        started_at = time.monotonic()
        for attempt in range(1, _MAX_START_ATTEMPTS + 1):
            self.port = free_ports(1)[0]
            try:
                self._launch_and_wait(timeout)
                break
            except _PortTakenError:
                logger.warning("port %d was taken before Label Studio bound it (attempt %d)", self.port, attempt)
                if attempt == _MAX_START_ATTEMPTS:
                    raise RuntimeError("Label Studio found every picked port taken:\n" + self._log.tail()) from None
        if self.token is None:
            self.token = self._create_personal_access_token()
        self.startup_seconds = time.monotonic() - started_at
        logger.info("Label Studio ready on %s in %.1fs (data in %s)", self.url, self.startup_seconds, self.data_dir)

    def restart(self, timeout: float = 240.0) -> None:
        """Stop and start again on the same port and data: projects, tasks and the token survive."""
        if self.port is None:
            raise RuntimeError("LabelStudioServer.restart() called before start()")
        self.stop()
        self._wait_port_bindable(30)
        started_at = time.monotonic()
        self._launch_and_wait(timeout)
        logger.info("Label Studio restarted on %s in %.1fs", self.url, time.monotonic() - started_at)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the server's process group, SIGKILL after ``timeout`` seconds. Idempotent."""
        process = self._process
        if process is not None and process.poll() is None:
            logger.info("stopping Label Studio (pid %d)", process.pid)
            self._signal_group(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning("Label Studio (pid %d) did not stop within %.0fs; killing it", process.pid, timeout)
                self._signal_group(signal.SIGKILL)
                process.wait()
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        _LIVE_SERVERS.discard(self)

    def __enter__(self) -> LabelStudioServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self.port is not None else "unstarted"
        return f"<LabelStudioServer {where} {'running' if self.is_running else 'stopped'}>"

    # -- what tests may need besides the token ---------------------------------------------------

    def legacy_token(self) -> str:
        """The admin's legacy API token (``Authorization: Token ...``). It authenticates only once the
        organization enables legacy tokens (``POST /api/jwt/settings``); 1.23 disables them by default."""
        opener = self._login()
        body = self._call(opener, "GET", "/api/current-user/token")
        return str(body["token"])

    # -- internals ---------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            # The test process's own settings must not leak into the server.
            if not key.startswith(("LABEL_STUDIO_", "HEARTEX_", "DJANGO_"))
            and key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "USERNAME", "PASSWORD")
        }
        env.update(_SERVER_ENV)
        env["SECRET_KEY"] = self.secret_key
        env["LABEL_STUDIO_BASE_DATA_DIR"] = str(self.data_dir.resolve())
        env["LABEL_STUDIO_USERNAME"] = self.username
        env["LABEL_STUDIO_PASSWORD"] = self.password
        env["PATH"] = f"{self.venv_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        return env

    def _launch_and_wait(self, timeout: float) -> None:
        assert self.port is not None
        command = [
            str(self.venv_dir / "bin" / "label-studio"),
            "start",
            "--no-browser",
            "--data-dir",
            str(self.data_dir.resolve()),
            "--database",
            str((self.data_dir / "label_studio.sqlite3").resolve()),
            "--internal-host",
            HOST,
            "--port",
            str(self.port),
        ]
        with self.log_file.open("ab") as log:
            log.write(f"===== shoal test harness: starting Label Studio on {HOST}:{self.port} =====\n".encode())
        self._log.mark()
        self._log_handle = self.log_file.open("ab")
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            cwd=self.work_dir,
            env=self._environment(),
            start_new_session=True,  # its own process group: stop() signals the whole tree
        )
        _LIVE_SERVERS.add(self)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop(timeout=5)
            raise

    def _wait_ready(self, timeout: float) -> None:
        process = self._process
        assert process is not None

        def gone() -> str | None:
            # When its port is taken, `label-studio start` silently moves to the next one.
            if f"Port {self.port} is in use" in self._log.text():
                raise _PortTakenError()
            if process.poll() is None:
                return None
            return f"Label Studio exited with code {process.returncode} (log: {self.log_file}):\n" + self._log.tail()

        wait_until(
            self._healthy,
            what=f"Label Studio on {self.url} to answer /health",
            bound=timeout,
            dead=gone,
            progress=lambda: (self._log.size(), int(tree_cpu_seconds(process.pid))),
            stall=timeout / 3,
            interval=0.2,
            max_interval=1.0,
        )

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=scaled(2)) as response:  # noqa: S310 (loopback)
                return response.status == 200 and json.loads(response.read()).get("status") == "UP"
        except (OSError, ValueError):
            return False

    def _login(self) -> urllib.request.OpenerDirector:
        """A session logged in through the login form, as a browser does."""
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with opener.open(f"{self.url}/user/login/", timeout=scaled(30)) as response:
            response.read()
        csrf = next((c.value for c in jar if c.name == "csrftoken"), "")
        form = urllib.parse.urlencode(
            {"email": self.username, "password": self.password, "csrfmiddlewaretoken": csrf}
        ).encode()
        request = urllib.request.Request(  # noqa: S310 (the URL is the loopback server's)
            f"{self.url}/user/login/",
            data=form,
            headers={"X-CSRFToken": csrf, "Referer": f"{self.url}/user/login/"},
        )
        with opener.open(request, timeout=scaled(30)) as response:
            response.read()
        if not any(c.name == "sessionid" for c in jar):
            raise RuntimeError(f"could not log in to Label Studio as {self.username}:\n" + self._log.tail())
        return opener

    def _call(self, opener: urllib.request.OpenerDirector, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 (the URL is the loopback server's)
            f"{self.url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with opener.open(request, timeout=scaled(30)) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise _HTTPError(exc.code, f"{method} {path} answered {exc.code}: {detail}") from None
        return json.loads(raw) if raw else None

    def _create_personal_access_token(self) -> str:
        opener = self._login()
        try:
            created = self._call(opener, "POST", "/api/token/", {})
        except _HTTPError as exc:
            if exc.status != 409:
                raise RuntimeError(f"could not create a personal access token: {exc}") from None
            # One live token per user: revoke the one we cannot read back (only its unsigned part is
            # listed), then create a new one.
            for listed in self._call(opener, "GET", "/api/token/"):
                self._call(opener, "POST", "/api/token/blacklist/", {"refresh": listed["token"]})
            created = self._call(opener, "POST", "/api/token/", {})
        return str(created["token"])

    def _wait_port_bindable(self, timeout: float) -> None:
        assert self.port is not None
        port = self.port
        wait_until(
            lambda: port_is_bindable(port),
            what=f"port {port} of the stopped Label Studio to be free again",
            bound=timeout,
            interval=0.2,
        )

    def _signal_group(self, signum: signal.Signals) -> None:
        assert self._process is not None
        signal_group(self._process, signum)


class _PortTakenError(Exception):
    """Label Studio found its port taken and moved on to another one."""


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
