"""Stacked trials (``sadkit study --stack K``): K trials asked of Optuna at once, trained as one stack.

Optuna runs the K trials as its own ``n_jobs=K`` threads (``Study.optimize``), so each trial keeps
everything Optuna gives a trial: its sampler suggestions, its heartbeat, pruning by ``TrialPruned``, its
final state and the study's callbacks. Each thread suggests its parameters and hands its experiment spec
to a :class:`TrialBatch`; when all K have arrived (a trial that fails before abandons it), one runs them with
:func:`sadkit.experiment.run_experiments`, which trains the models that can stack (same architecture and
schedule; learning rate, weight decay and eta may differ per trial) as one grouped network, each trial
still in its own MLflow run, and every thread returns its own result or raises its own exception (a
pruned model stops alone: the others train on).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..callbacks import Callback
from ..experiment import ExperimentSpec, run_experiments


class TrialBatch:
    """A rendezvous of ``size`` trials: each :meth:`run` blocks until the batch has run, then returns its own.

    Args:
        size: the number of trials that run together (Optuna's ``n_jobs`` of this round).
        tracker: the tracker every run logs to.
        run_options: the remaining keywords of :func:`run_experiments` (``parent_run_id``, ``stop_on``).
    """

    def __init__(self, size: int, tracker: Any, **run_options: Any) -> None:
        self.size = int(size)
        self.tracker = tracker
        self.run_options = run_options
        self._cond = threading.Condition()
        #: per trial that joined: (key, spec, callbacks, tags, on_open)
        self._entries: list[tuple[Any, ExperimentSpec, Sequence[Callback], Mapping[str, str], Any]] = []
        self._outcomes: list[Any] | None = None
        self._started = False

    def abandon(self) -> None:
        """One trial will not join (it failed before it could): the batch runs without it."""
        with self._cond:
            self.size -= 1
            self._cond.notify_all()

    def has_joined(self, key: Any) -> bool:
        with self._cond:
            return any(entry[0] == key for entry in self._entries)

    def run(
        self,
        key: Any,
        spec: ExperimentSpec,
        callbacks: Sequence[Callback],
        tags: Mapping[str, str],
        on_open: Callable[[str], None] | None = None,
    ) -> Any:
        """Join the batch with one experiment (``key``: the trial); return its result, or raise its exception."""
        with self._cond:
            index = len(self._entries)
            self._entries.append((key, spec, callbacks, tags, on_open))
            self._cond.notify_all()
            leader = False
            while self._outcomes is None:
                if not self._started and len(self._entries) >= self.size:
                    self._started = leader = True  # the batch is complete: this thread runs it
                    break
                self._cond.wait()
        if leader:
            try:
                outcomes = self._run_all()
            except BaseException as err:  # noqa: BLE001 - every trial of the batch gets it
                outcomes = [err] * len(self._entries)
            with self._cond:
                self._outcomes = outcomes
                self._cond.notify_all()
        with self._cond:
            while self._outcomes is None:
                self._cond.wait()
            outcome = self._outcomes[index]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _run_all(self) -> list[Any]:
        with self._cond:
            entries = list(self._entries)
        return run_experiments(
            [entry[1] for entry in entries],
            [entry[2] for entry in entries],
            tags=[entry[3] for entry in entries],
            on_open=[entry[4] for entry in entries],
            tracker=self.tracker,
            return_exceptions=True,
            **self.run_options,
        )
