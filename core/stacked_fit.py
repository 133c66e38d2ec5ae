"""Fitting several detectors at once: those that can share one grouped network train stacked.

:func:`fit_together` is :meth:`sadkit.Detector.fit` for a list of detectors, each with its own data.
Detectors of one family (classes that share one ``_fit_stack``, e.g. Deep SAD and Deep SVDD) whose
:meth:`~sadkit.Detector._stack_key` agree (same architecture, same schedule
but for per-model rates, training sets of one size) train as one stack (:mod:`sadkit.stacking`); the
others are fitted one by one, and a detector class that cannot stack says so once.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from .callbacks import Callback
from .detector import Detector
from .errors import InvalidInputError, SadkitWarning

#: detector classes that have already said they cannot stack (once per process)
_told: set[str] = set()


def fit_together(
    detectors: Sequence[Detector],
    data: Sequence[tuple[Any, Any]],
    *,
    eval_sets: Sequence[tuple[Any, Any] | None] | None = None,
    callbacks: Sequence[Sequence[Callback]] | None = None,
    stack: bool = True,
    return_exceptions: bool = False,
    between: Callable[[], None] | None = None,
) -> list[Any]:
    """Fit ``detectors[i]`` on ``data[i] = (X, y)`` (labels as in :meth:`sadkit.Detector.fit`).

    Args:
        eval_sets: per detector, an optional ``(X_val, y_val)`` (as ``fit``'s ``eval_set``).
        callbacks: per detector, its callbacks (each receives its own model's progress).
        stack: False fits them one by one (what ``--no-stack`` asks for).
        return_exceptions: a detector whose fit raised (or whose callback stopped it, e.g. a pruned
            trial) is returned as that exception instead of raising the first one after every fit.
        between: called after each group's (or lone model's) fit, e.g. to end earlier runs whose figures
            are in while models that cannot stack train one by one.

    Each detector ends with ``stack_size_``: how many models it trained with (1 alone). A stacked model's
    ``timings_`` are the stack's wall time divided by the stack size (its share).
    """
    n = len(detectors)
    if len(data) != n:
        raise InvalidInputError(f"{n} detectors but {len(data)} data sets")
    eval_sets = list(eval_sets) if eval_sets is not None else [None] * n
    callbacks = [list(c) for c in callbacks] if callbacks is not None else [[] for _ in range(n)]
    begun = [det._begin_fit(X, y, None, ev) for det, (X, y), ev in zip(detectors, data, eval_sets, strict=True)]
    outcomes: list[Any] = list(detectors)
    for members in _groups(detectors, [b[0] for b in begun], stack):
        started = time.perf_counter()
        if len(members) == 1:
            i = members[0]
            X, labels, ev, _ = begun[i]
            try:
                detectors[i]._fit(X, labels, eval_set=ev, callbacks=callbacks[i])
            except Exception as err:  # raised below, after the others, unless returned
                outcomes[i] = err
        else:
            group = [detectors[i] for i in members]
            errors = type(group[0])._fit_stack(
                group,
                [begun[i][0] for i in members],
                [begun[i][1] for i in members],
                [begun[i][2] for i in members],
                [callbacks[i] for i in members],
            )
            for i, err in zip(members, errors, strict=True):
                if err is not None:
                    outcomes[i] = err
        share = (time.perf_counter() - started) / len(members)
        for i in members:
            vars(detectors[i]).setdefault("timings_", {"train": share})
            detectors[i].stack_size_ = len(members)
        if between is not None:
            between()
    for det, outcome, (X, _, ev, rule) in zip(detectors, outcomes, begun, strict=True):
        if outcome is det:
            det._end_fit(X, ev, rule)
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    if failed and not return_exceptions:
        raise failed[0]
    return outcomes


def _groups(detectors: Sequence[Detector], Xs: Sequence[Any], stack: bool) -> list[list[int]]:
    """Indices of the detectors that train together (a group of one trains alone)."""
    groups: dict[Any, list[int]] = {}
    for i, (det, X) in enumerate(zip(detectors, Xs, strict=True)):
        key = det._stack_key(X) if stack and det.can_stack else None
        if stack and not det.can_stack and type(det).__name__ not in _told:
            _told.add(type(det).__name__)
            warnings.warn(f"{type(det).__name__} cannot train stacked; its runs train one by one", SadkitWarning, 3)
        family = getattr(type(det)._fit_stack, "__func__", type(det))  # classes sharing one _fit_stack stack together
        groups.setdefault((family, key, len(X)) if key is not None else ("alone", i), []).append(i)
    return list(groups.values())
