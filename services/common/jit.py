"""Compiled kernels without cold starts.

Shoal's own numba kernels are compiled with ``cache=True``: the machine code is kept on disk and a
new process loads it instead of compiling. Libraries compiled with numba without that (UMAP) get
the same disk cache through :func:`cache_compiled`. A service then loads (or, the first time on a
machine, compiles) every kernel its jobs call on a background thread as it starts
(:class:`Warmup`), so no request waits for a compiler.

Where the cache lives is numba's choice: beside the code when that is writable, else
``NUMBA_CACHE_DIR``. A container whose code is read-only bakes the cache at build time into a
directory named by ``SHOAL_NUMBA_CACHE_SEED`` and copies it into ``NUMBA_CACHE_DIR`` as it starts
(:func:`seed_cache`): the code's paths and timestamps are those of the image, so every kernel is
found there.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from shoal.common.telemetry import KERNELS_WARM, KERNELS_WARM_SECONDS
from shoal.common.workers import ThreadWorker

__all__ = [
    "SEED_ENV",
    "Warmup",
    "cache_compiled",
    "count_compilations",
    "import_cached",
    "seed_cache",
    "warm_in_processes",
]

log = logging.getLogger(__name__)

#: the directory holding a cache compiled ahead of time (an image's build), copied at start
SEED_ENV = "SHOAL_NUMBA_CACHE_SEED"


def cache_compiled(modules: Sequence[ModuleType]) -> int:
    """Turns numba's disk cache on for the kernels of ``modules`` compiled without it; returns how
    many. Call it before their first use: a kernel compiled before keeps its code in memory only."""
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    turned = 0
    with _caching_lock:  # the warm-up and a job may ask at once
        for module in modules:
            for value in list(vars(module).values()):
                if isinstance(value, Dispatcher) and value.__module__ == module.__name__:
                    if isinstance(value._cache, NullCache):
                        value.enable_caching()
                        turned += 1
    return turned


def import_cached(package: str, submodules: Sequence[str]) -> ModuleType:
    """``package`` with numba's disk cache turned on for the kernels of its ``submodules``, imported
    under one lock: the warm-up and a job may import it at once, and a half-imported module has not
    all its kernels yet."""
    with _import_lock:
        root = importlib.import_module(package)
        cache_compiled([importlib.import_module(f"{package}.{name}") for name in submodules])
    return root


_counting = False
_counting_lock = threading.Lock()
_caching_lock = threading.Lock()
_import_lock = threading.Lock()


def count_compilations() -> None:
    """Counts every compilation numba does in this process in ``shoal_kernel_compilations_total``
    (loading from the disk cache is no compilation); installed once."""
    global _counting
    from numba.core import event

    from shoal.common.telemetry import KERNEL_COMPILATIONS

    class _Count(event.Listener):
        def on_start(self, ev: event.Event) -> None:
            KERNEL_COMPILATIONS.inc()

        def on_end(self, ev: event.Event) -> None:
            pass

    with _counting_lock:
        if not _counting:
            event.register("numba:compile", _Count())
            _counting = True


def seed_cache(environ: dict[str, str] | None = None) -> bool:
    """Copies the cache compiled ahead of time (``SHOAL_NUMBA_CACHE_SEED``) into ``NUMBA_CACHE_DIR``
    once, before any kernel is loaded; True when it copied. A missing seed is no error (the kernels
    then compile on the warm-up thread)."""
    env = os.environ if environ is None else environ
    seed, target = env.get(SEED_ENV), env.get("NUMBA_CACHE_DIR")
    if not seed or not target or not Path(seed).is_dir():
        return False
    marker = Path(target) / ".seeded"
    if marker.exists():
        return False
    try:
        shutil.copytree(seed, target, dirs_exist_ok=True)
        marker.touch()
    except OSError as exc:
        log.warning("could not copy the compiled kernels from %s to %s: %s", seed, target, exc)
        return False
    return True


class Warmup(ThreadWorker):
    """Runs each of ``kernels`` once, on a thread of its own, as the service starts: each loads its
    compiled code from the disk cache (or compiles it, the first time on a machine). It never holds
    readiness back: a job that starts meanwhile only finds the kernel it needs still loading.

    With ``quiet``, each of the ``patient`` kernels (those that compile in every process, numba unable to
    cache them) waits until ``quiet()`` is true (the service has run no job for a moment): a compilation
    holds the GIL for much of its time, and a job beside it ran half as fast (a 20k-frame map fit took 18 s
    beside NN-descent's compilation, 11 s alone). A job that needs such a kernel before compiles it itself,
    as it would have waited for it. The other kernels load from the disk cache at once, as the first jobs
    need them."""

    name = "kernel-warmup"
    #: how often a warm-up held back by ``quiet`` asks again
    POLL_SECONDS = 0.25

    def __init__(
        self,
        kernels: Sequence[Callable[[], object]],
        quiet: Callable[[], bool] | None = None,
        patient: Sequence[Callable[[], object]] = (),
    ) -> None:
        super().__init__()
        self.kernels = list(kernels)
        self.quiet = quiet
        self.patient = set(patient)
        #: set once every kernel is loaded (or failed to, which is logged)
        self.done = threading.Event()
        self.seconds: float | None = None

    def _run(self) -> None:
        self.run()

    def stop(self, timeout_seconds: float) -> None:
        """Asks the warm-up to end after the kernel it is loading, without waiting: a compilation cannot be
        interrupted, and waiting for it would only hold the shutdown back (see :meth:`busy`)."""
        self._stop.set()

    def busy(self) -> bool:
        """Whether it is still loading or compiling a kernel. numba compiles in LLVM without holding the GIL,
        and a process that finalizes its interpreter meanwhile is aborted inside LLVM (SIGABRT, seen when a
        server was stopped a few seconds after it started): the server then ends its process without
        finalizing (:meth:`shoal.common.server.Server.serve`)."""
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        """Runs the kernels on the calling thread (the worker's thread, or a build step's)."""
        start = time.monotonic()
        failed = 0
        for kernel in self.kernels:
            while kernel in self.patient and self.quiet is not None and not self.quiet():
                if self._stop.wait(self.POLL_SECONDS):
                    return
            if self._stop.is_set():
                return
            failed += not _warmed(kernel, kernel)
        self.seconds = time.monotonic() - start
        KERNELS_WARM_SECONDS.set(self.seconds)
        KERNELS_WARM.set(1)
        log.info("%d compiled kernels ready in %.1fs%s", len(self.kernels) - failed, self.seconds,
                 f" ({failed} failed)" if failed else "")  # fmt: skip
        self.done.set()

    def healthy(self) -> bool:
        return True


def warm_in_processes(kernels: Sequence[Callable[[], object]], processes: int) -> tuple[float, int]:
    """Runs each of ``kernels`` once, in a pool of ``processes`` processes, for their disk cache: what a
    build step does on a machine with more than one core (numba compiles one kernel at a time in a
    process). Returns the seconds it took and how many failed (each logged; it compiles when first
    used instead)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    start = time.monotonic()
    failed = 0
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing compiled or threaded yet
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        futures = [(kernel, pool.submit(kernel)) for kernel in kernels]
        for kernel, future in futures:
            failed += not _warmed(kernel, future.result)
    return time.monotonic() - start, failed


def _warmed(kernel: Callable[[], object], run: Callable[[], object]) -> bool:
    """Whether ``run`` (which warms ``kernel``) succeeded; a failure is logged, and the kernel compiles on first
    use instead."""
    try:
        run()
    except Exception:
        log.exception("warming %s failed; it compiles when first used", getattr(kernel, "__name__", kernel))
        return False
    return True
