"""A run's figures drawn off the training's critical path, and runs that end once their figures are in.

On a short tabular schedule, drawing a run's ROC curve and score histogram took longer than training
it (``projects/odds_quick.yaml``: 1.4 s of figures against 0.8 s of stacked training for 8 runs). Inside
:func:`background_figures` (``sadkit reproduce`` runs its tasks inside it), a run's figures are
drawn by one helper process (:mod:`sadkit.figure_worker`), and a run whose figures are not drawn yet
when its other logging is done is ended later (:func:`end_later`): still RUNNING, with its heartbeat,
until its figures are logged, which happens while the next task trains, or when the block ends
(it waits for all of them); its end time is when its own work ended. Outside the block, or where the
helper cannot start, figures are drawn in this process as before. ``SADKIT_BACKGROUND_FIGURES=0`` turns the helper off.

A figure the helper fails to draw, or has not drawn after :data:`WAIT_SECONDS`, is drawn here instead. A run
kept open has done all its work, so when the block is left by Ctrl-C (or SIGTERM, or an error) its figures
are logged and it ends FINISHED as it would have, waiting for the helper at most :data:`INTERRUPTED_WAIT_SECONDS`
(the helper ignores Ctrl-C: it ends when its input does).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from ..figure_worker import read_frame, write_frame

#: the environment variable that turns the helper process off ("0")
ENV_SWITCH = "SADKIT_BACKGROUND_FIGURES"
#: how long a run waits for the helper to draw its figures before it draws them itself
WAIT_SECONDS = 120.0
#: the same when the command is being stopped (Ctrl-C, SIGTERM): it should end soon
INTERRUPTED_WAIT_SECONDS = 3.0


class FigureRenderer:
    """One helper process drawing figures to files (see :mod:`sadkit.figure_worker`)."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="sadkit-figures-"))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "sadkit.figure_worker", str(self.folder)],  # it removes the folder at its end
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._lock = threading.Lock()
        self._futures: dict[int, tuple[Future, list[str]]] = {}  # job id -> its future and files
        self._next_id = 0
        # requests go out through a queue: a write to a full pipe must not hold up the caller
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._write_requests, name="sadkit-figures-out", daemon=True).start()
        threading.Thread(target=self._read_replies, name="sadkit-figures-in", daemon=True).start()

    def submit(self, figures: list[tuple[str, tuple, str]]) -> Future:
        """Draw ``(plot, args, file name)`` each; the future's result is the list of files drawn."""
        with self._lock:
            self._next_id += 1
            job_id = self._next_id
            job_folder = self.folder / str(job_id)
            job_folder.mkdir()
            paths = [str(job_folder / name) for _, _, name in figures]
            future: Future = Future()
            self._futures[job_id] = (future, paths)
        self._requests.put((job_id, [(p, a, path) for (p, a, _), path in zip(figures, paths, strict=True)]))
        return future

    def _write_requests(self) -> None:
        while (request := self._requests.get()) is not None:
            try:
                write_frame(self._process.stdin, request)
            except OSError:  # the helper is gone; the reader fails what it did not answer
                break
        with contextlib.suppress(OSError):
            self._process.stdin.close()

    def _read_replies(self) -> None:
        while True:
            try:
                reply = read_frame(self._process.stdout)
            except Exception:  # noqa: BLE001 - a broken pipe: as the end of the helper
                reply = None
            if reply is None:
                break
            job_id, error = reply
            with self._lock:
                future, paths = self._futures.pop(job_id, (None, None))
            if future is not None:
                if error is None:
                    future.set_result(paths)
                else:
                    future.set_exception(RuntimeError(f"the figure helper failed: {error}"))
        with self._lock:  # the helper ended: whatever it did not answer is drawn by its callers
            left, self._futures = self._futures, {}
        for future, _ in left.values():
            future.set_exception(RuntimeError("the figure helper process ended"))

    def alive(self) -> bool:
        return self._process.poll() is None

    def close(self) -> None:
        self._requests.put(None)  # the writer closes the helper's input after the requests before it
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


_renderer: FigureRenderer | None = None
_active = 0  # depth of background_figures blocks
_deferred: list[tuple[Any, Any]] = []  # (the run's context manager, its RunLogger), oldest first


def _wanted() -> bool:
    """The helper is on (not ``SADKIT_BACKGROUND_FIGURES=0``) and there is a core for it."""
    return os.environ.get(ENV_SWITCH, "1") != "0" and (os.cpu_count() or 1) > 1


def active_renderer() -> FigureRenderer | None:
    """The helper, inside :func:`background_figures` where it runs; None: draw here."""
    alive = _renderer is not None and _renderer.alive()
    return _renderer if _active and alive and _wanted() else None


def start_helper() -> None:
    """Start the helper process now (it takes a second to import matplotlib), for a later
    :func:`background_figures` block; nothing when it is off, the machine has one core, or it runs."""
    global _renderer
    if not _wanted():
        return  # off, or one core: a helper would only take turns with the training
    if _renderer is None or not _renderer.alive():
        try:
            _renderer = FigureRenderer()
        except OSError:
            _renderer = None
        else:
            atexit.register(_renderer.close)


@contextlib.contextmanager
def background_figures() -> Iterator[None]:
    """Figures drawn by the helper process, and runs ended when their figures are in (see the module)."""
    global _active
    start_helper()
    _active += 1
    interrupted = False
    try:
        yield
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        _active -= 1
        if not _active:
            settle(wait=True, interrupted=interrupted)


def end_later(context: Any, run: Any) -> bool:
    """Inside :func:`background_figures`, keep a run whose figures are being drawn open: it ends (its
    ``context`` exits) at a later :func:`settle`. False (end it now) outside, or with nothing to wait for."""
    if not _active or run.figures_ready():
        return False
    run.work_ended_ms = int(time.time() * 1000)  # its end time: the wait for the figures is not its own
    _deferred.append((context, run))
    return True


def settle(wait: bool = False, interrupted: bool = False) -> None:
    """End the runs kept open whose figures are drawn (every one with ``wait``; ``interrupted``: the command
    is being stopped, so the wait for the helper is short)."""
    ready = [(context, run) for context, run in _deferred if wait or run.figures_ready()]
    _deferred[:] = [entry for entry in _deferred if entry not in ready]
    for context, run in ready:
        run.figures_wait_seconds = INTERRUPTED_WAIT_SECONDS if interrupted else WAIT_SECONDS
        with contextlib.suppress(Exception):  # its own error is tagged on the run by the context
            context.__exit__(None, None, None)
