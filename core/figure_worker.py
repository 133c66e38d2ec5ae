"""The process that draws a run's figures while the process that trains goes on (``python -m sadkit.figure_worker``).

Drawing a ROC curve and a score histogram costs a tabular run more than its training on a short
schedule (matplotlib lays out every tick and label in Python); on a machine with a free core,
:mod:`sadkit.tracking.figures` hands them to this process. It imports :mod:`sadkit.plots` (matplotlib,
numpy) and nothing of MLflow or torch.

Protocol, on stdin and stdout: length-prefixed pickles. A request is ``(job_id, [(plot, args, path), ...])``
where ``plot`` names a function of :mod:`sadkit.plots` returning a Figure, saved to ``path`` as
MLflow's ``log_figure`` saves it (``Figure.savefig(path)``); the reply is ``(job_id, None)`` or
``(job_id, "<error>")``. End of input ends the process and removes the folder named as its argument.
Only the parent process writes the pickles read here (a pipe it created), as with :mod:`multiprocessing`.
"""

from __future__ import annotations

import pickle
import shutil
import signal
import struct
import sys
from typing import Any, BinaryIO

_HEADER = struct.Struct("<Q")

#: the functions of sadkit.plots this process draws (each returns one Figure)
PLOTS = ("roc_figure", "score_histogram")


def write_frame(stream: BinaryIO, payload: Any) -> None:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: BinaryIO) -> Any:
    """The next payload, or None at the end of the stream."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    return pickle.loads(stream.read(size))  # noqa: S301 - our own parent's pipe


def draw(figures: list[tuple[str, tuple, str]]) -> None:
    """Draw each ``(plot, args, path)``: ``sadkit.plots.<plot>(*args).savefig(path)``."""
    from sadkit import plots

    for name, args, path in figures:
        if name not in PLOTS:
            raise ValueError(f"{name!r} is not a figure of sadkit.plots")
        getattr(plots, name)(*args).savefig(path)


def main(folder: str | None = None) -> None:
    """Answer requests until the end of input, then remove ``folder`` (the parent's folder for the files:
    the input ends when the parent closes it or when the parent dies, so nothing is left behind)."""
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing printed by a library may corrupt the replies
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides, then closes us
    try:
        import sadkit.plots  # noqa: F401 - matplotlib's import, while the parent still trains the first models

        while (request := read_frame(requests)) is not None:
            job_id, figures = request
            try:
                draw(figures)
                write_frame(replies, (job_id, None))
            except Exception as err:  # noqa: BLE001 - the parent draws this job itself
                write_frame(replies, (job_id, f"{type(err).__name__}: {err}"))
    except BrokenPipeError:  # the parent is gone
        pass
    finally:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
