"""What the test servers' harnesses share: loopback ports, process groups and the log of the latest launch.

Only the standard library: the harnesses run before anything else is importable.
"""

from __future__ import annotations

import errno
import os
import pathlib
import signal
import socket
import subprocess

__all__ = ["HOST", "LaunchLog", "free_ports", "port_is_bindable", "signal_group"]

HOST = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """Ask the kernel for ``count`` distinct free TCP ports on the loopback."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_is_bindable(port: int) -> bool:
    """True when a listener could bind ``HOST:port`` now (with SO_REUSEADDR, as servers do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
        return True


def signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    """Signal the process group a server was started in (``start_new_session=True``), so its children
    get it too; the process alone where the group cannot be signalled. A process gone already is fine."""
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError:
        process.send_signal(signum)


class LaunchLog:
    """A server's log file, where every launch appends: read from where the latest launch began."""

    def __init__(self, path: pathlib.Path, tail_lines: int = 40) -> None:
        self.path = path
        self.tail_lines = tail_lines
        self._offset = 0

    def mark(self) -> None:
        """The next launch's output starts here."""
        self._offset = self.path.stat().st_size if self.path.exists() else 0

    def text(self) -> str:
        """What was logged since the last :meth:`mark`; empty when the file cannot be read."""
        try:
            with self.path.open("rb") as log:
                log.seek(self._offset)
                return log.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def size(self) -> int:
        """Bytes in the file (0 when it cannot be read): a server that is still starting usually adds some."""
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def tail(self, lines: int | None = None) -> str:
        """The last lines logged since the last :meth:`mark`, for an error message."""
        text = self.text()
        if not text.strip():
            return f"(nothing in {self.path})"
        return "\n".join(text.rstrip("\n").splitlines()[-(lines or self.tail_lines) :])
