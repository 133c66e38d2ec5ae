"""An experiment: a spec (detector, dataset, parameters, seed) -> one tracked run -> results."""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .callbacks import Callback
from .errors import SadkitWarning, SpecError
from .experiment_spec import (  # noqa: F401 - re-exported: sadkit.experiment is where users import them
    RANDOM_SEEDS,
    STACK_TAG,
    ExperimentResult,
    ExperimentSpec,
    read_spec_file,
    resolve_seed,
)
from .leakage import LEAKAGE_TAG, paper_test_holdout, requested_leakage
from .metrics import auprc, auroc, decision_metrics
from .registry import create_dataset, create_detector, get
from .serialize import to_json
from .training import configure_threads


def build(spec: ExperimentSpec, seed: int, n_train: int | None = None) -> tuple[Any, Any]:
    """Instantiate the dataset and the detector of ``spec`` (the detector is not fitted).

    With ``n_train`` (the size of the loaded training split), the dataset's training defaults for that size
    fill in what the user did not give (see :meth:`sadkit.Dataset.detector_defaults`).
    """
    if "seed" in spec.data:
        raise SpecError("give the seed once, as the experiment's seed, not as a data parameter")
    dataset = create_dataset(spec.dataset, seed=seed, **spec.data)
    defaults = dataset.detector_defaults(n_train) if n_train is not None else {}
    params = detector_params(spec.detector, spec.params, dataset, seed, spec.device, defaults)
    return dataset, create_detector(spec.detector, **params)


def detector_params(
    detector: str,
    params: Mapping[str, Any],
    dataset: Any,
    seed: int,
    device: str,
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``params`` completed with the run's seed, device, the dataset's network and the dataset's training
    ``defaults``, where the detector takes them and the user did not give them."""
    params = dict(params)
    accepted = get("detectors", detector)._get_param_names()
    for name, value in (defaults or {}).items():
        if name in accepted:
            params.setdefault(name, value)
    if "seed" in accepted:
        params.setdefault("seed", seed)
    if "device" in accepted:
        params.setdefault("device", device)
    if "net_name" in accepted and params.get("net_name") is None:
        params["net_name"] = dataset.network
    return params


@dataclass
class _Prepared:
    """One spec, checked and loaded, before its run opens."""

    spec: ExperimentSpec
    seed: int
    dataset: Any
    train: Any
    val: Any
    test: Any
    detector: Any
    holdout: Any
    leakage: str | None
    defaults: Mapping[str, Any]


def _prepare(spec: ExperimentSpec) -> _Prepared:
    """Build, check and load everything of ``spec`` that can fail before a run opens."""
    seed = resolve_seed(spec.seed)
    configure_threads(spec.threads)
    dataset, _ = build(spec, seed)  # a bad detector parameter fails here, before any data are read
    train, val, test = dataset.load()
    _, detector = build(spec, seed, n_train=len(train))
    detector.check_params()
    given = {*spec.params, *(["device"] if spec.device not in (None, "auto") else [])}
    ignored = sorted(given & set(detector.ignored_params()))
    if ignored:
        warnings.warn(
            f"{spec.detector}: {', '.join(f'{k}={detector.get_params()[k]!r}' for k in ignored)} has no effect"
            " with the other parameters as they are (e.g. features='raw' trains no network)",
            SadkitWarning,
            stacklevel=3,
        )
    leakage = requested_leakage(detector)  # only a detector that asks for it by name sees test data
    holdout = None
    if leakage:  # selection on a holdout of the test split; the test metrics are on the rest
        holdout, test = paper_test_holdout(test, seed)
    defaults = dataset.detector_defaults(len(train))
    return _Prepared(spec, seed, dataset, train, val, test, detector, holdout, leakage, defaults)


def run_experiment(
    spec: ExperimentSpec,
    callbacks: Sequence[Callback] = (),
    *,
    tracker: Any = None,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    stop_on: Mapping[type[BaseException], Mapping[str, str]] | None = None,
) -> ExperimentResult:
    """Run ``spec`` in one MLflow run and return its results.

    Everything that can be checked is checked before the run opens: the dataset and detector are built
    and their parameters validated, and the data are loaded, so a typo or an impossible ratio leaves no
    run behind. The run ends FAILED (and keeps what it logged) when anything raises later, except for the
    exception types of ``stop_on`` (e.g. a pruned trial): those end it KILLED with the given tags.
    """
    return run_experiments(
        [spec], [callbacks], tracker=tracker, parent_run_id=parent_run_id, tags=[tags or {}], stop_on=stop_on
    )[0]


def run_experiments(
    specs: Sequence[ExperimentSpec],
    callbacks: Sequence[Sequence[Callback]] | None = None,
    *,
    tracker: Any = None,
    parent_run_id: str | None = None,
    tags: Sequence[Mapping[str, str]] | None = None,
    stop_on: Mapping[type[BaseException], Mapping[str, str]] | None = None,
    stack: bool = True,
    return_exceptions: bool = False,
    on_open: Sequence[Callable[[str], None] | None] | None = None,
) -> list[Any]:
    """Run several specs, each in its own MLflow run, fitting their detectors together.

    Detectors that can train as one grouped network (same architecture and schedule, training sets of one
    size: see :func:`sadkit.stacked_fit.fit_together`) train stacked unless ``stack`` is False; every spec
    still gets its own run with its own parameters, per-epoch metrics, center and model, as
    :func:`run_experiment` gives it. All runs are open during the fit. A spec whose fit or evaluation
    raises ends its own run (FAILED, or KILLED for ``stop_on``) and the others finish; then the first
    exception is raised, or, with ``return_exceptions``, each failed spec's exception takes its place in
    the returned list. ``on_open[i]``, when given, is called with spec ``i``'s run id as its run opens.
    """
    from .tracking import shared_tracker

    callbacks = list(callbacks) if callbacks is not None else [()] * len(specs)
    tags = list(tags) if tags is not None else [{}] * len(specs)
    on_open = list(on_open) if on_open is not None else [None] * len(specs)
    ready: list[Any] = []
    for spec in specs:  # a spec that fails its checks opens no run; with return_exceptions the others go on
        try:
            ready.append(_prepare(spec))
        except Exception as err:
            if not return_exceptions:
                raise
            ready.append(err)
    keep = [i for i, p in enumerate(ready) if not isinstance(p, BaseException)]
    outcomes = list(ready)
    if keep:
        tracker = tracker or shared_tracker(specs[keep[0]].tracking_uri, specs[keep[0]].experiment)
        ran = _run_prepared(
            [ready[i] for i in keep],
            [callbacks[i] for i in keep],
            [tags[i] for i in keep],
            [on_open[i] for i in keep],
            tracker=tracker,
            parent_run_id=parent_run_id,
            stop_on=stop_on,
            stack=stack,
        )
        for i, outcome in zip(keep, ran, strict=True):
            outcomes[i] = outcome
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    if failed and not return_exceptions:
        raise failed[0]
    return outcomes


def _run_prepared(
    prepared: list[_Prepared],
    callbacks: list[Sequence[Callback]],
    tags: list[Mapping[str, str]],
    on_open: list[Callable[[str], None] | None],
    *,
    tracker: Any,
    parent_run_id: str | None,
    stop_on: Mapping[type[BaseException], Mapping[str, str]] | None,
    stack: bool,
) -> list[Any]:
    """Open a run per prepared spec, fit the detectors together, finish each run: its result or exception."""
    from .stacked_fit import fit_together
    from .tracking.figures import end_later, settle

    contexts = [_open_run(p, tracker, parent_run_id, t, stop_on) for p, t in zip(prepared, tags, strict=True)]
    runs: list[Any] = []
    try:
        for i, context in enumerate(contexts):
            runs.append(context.__enter__())
            if on_open[i] is not None:
                on_open[i](runs[-1].run_id)
        started = time.perf_counter()
        flush = max(5.0, float(len(runs)))  # seconds between a run's epoch-metric flushes (see epoch_callback)
        fitted = fit_together(
            [p.detector for p in prepared],
            [(p.train.X, p.train.labels) for p in prepared],
            eval_sets=[_eval_set(p) for p in prepared],
            callbacks=[[run.epoch_callback(flush), *cbs] for run, cbs in zip(runs, callbacks, strict=True)],
            stack=stack,
            return_exceptions=True,
            between=settle,  # earlier runs whose figures were drawn meanwhile end, group by group
        )
        fit_seconds = (time.perf_counter() - started) / len(prepared)
    except BaseException as err:  # every open run ends with it (FAILED; KILLED on Ctrl-C)
        for context in reversed(contexts[: len(runs)]):
            with contextlib.suppress(BaseException):
                context.__exit__(type(err), err, err.__traceback__)
        raise
    outcomes: list[Any] = []
    for p, run, context, outcome in zip(prepared, runs, contexts, fitted, strict=True):
        try:
            if isinstance(outcome, BaseException):
                raise outcome
            result = _finish(p, run, fit_seconds)
        except BaseException as err:  # this run ends with it; the others go on, unless it is Ctrl-C
            with contextlib.suppress(BaseException):
                context.__exit__(type(err), err, err.__traceback__)
            if isinstance(err, KeyboardInterrupt):
                for rest in contexts[len(outcomes) + 1 :]:
                    with contextlib.suppress(BaseException):
                        rest.__exit__(type(err), err, err.__traceback__)
                raise
            outcomes.append(err)
        else:
            if not end_later(context, run):  # its figures are being drawn: it ends when they are in
                context.__exit__(None, None, None)
            outcomes.append(result)
    return outcomes


def _eval_set(p: _Prepared) -> tuple[Any, Any] | None:
    if p.holdout is not None:
        return (p.holdout.X, p.holdout.y)
    return (p.val.X, p.val.y) if len(p.val) else None


@contextlib.contextmanager
def _open_run(
    p: _Prepared, tracker: Any, parent_run_id: str | None, tags: Mapping[str, str], stop_on: Any
) -> Iterator[Any]:
    """Open the run of ``p`` and log what is known before the fit: parameters, split sizes, the dataset."""
    spec, dataset, train, val, test = p.spec, p.dataset, p.train, p.val, p.test
    parts = [spec.detector, spec.dataset, getattr(dataset, "name", None), f"seed{p.seed}"]
    run_name = spec.run_name or "-".join(str(part) for part in parts if part)
    run_tags = {"sadkit.detector": spec.detector, "sadkit.dataset": spec.dataset, **tags}
    if p.defaults:
        run_tags["sadkit.defaults"] = str(p.defaults.get("name", "dataset"))
    if p.leakage:
        run_tags[LEAKAGE_TAG] = p.leakage
    with tracker.start_run(run_name=run_name, tags=run_tags, parent_run_id=parent_run_id, stop_on=stop_on) as run:
        sizes = {"n_train": len(train), "n_val": len(val), "n_test": len(test)}
        if p.holdout is not None:
            sizes["n_test_holdout"] = len(p.holdout)
        params = {
            **p.detector.get_params(deep=False),
            **{f"data.{k}": v for k, v in dataset.get_params().items()},
            "detector": spec.detector,
            "dataset": spec.dataset,
            "seed": p.seed,
        }
        run.log_batch(params=params, metrics=sizes)  # one store transaction
        run.log_dict(
            {"train": train.summary(), "val": val.summary(), "test": test.summary()}, "data/split_summary.json"
        )
        name = "/".join(str(part) for part in (spec.dataset, getattr(dataset, "name", None)) if part)
        run.log_dataset(name, dataset.source, train.X, train.y)
        yield run


def _finish(p: _Prepared, run: Any, fit_seconds: float) -> ExperimentResult:
    """Evaluate the fitted detector of ``p`` and log its metrics, scores, arrays, model and plots."""
    spec, dataset, train, val, test, detector = p.spec, p.dataset, p.train, p.val, p.test, p.detector
    selected = to_json(detector.selected_params())
    stacked = getattr(detector, "stack_size_", 1) > 1
    timings = detector.timings_
    pretrain_seconds = float(timings.get("pretrain", 0.0))
    train_seconds = float(timings.get("train", fit_seconds - pretrain_seconds))
    val_scores = detector.decision_function(val.X) if len(val) else np.empty(0)
    test_scores = detector.decision_function(test.X) if len(test) else np.empty(0)
    metrics = {
        "val_auroc": auroc(val.y, val_scores),
        "val_auprc": auprc(val.y, val_scores),
        "test_auroc": auroc(test.y, test_scores),
        "test_auprc": auprc(test.y, test_scores),
        "train_seconds": train_seconds,
        "pretrain_seconds": pretrain_seconds,
        "fit_seconds": fit_seconds,
        "threshold": detector.threshold_,
        **decision_metrics(test.y, test_scores, detector.threshold_, "test"),
    }
    from .tracking.run import array_norms

    arrays = detector.tracked_arrays()
    run.log_batch(  # one store transaction: the selection, the stack, the metrics, the arrays' norms
        params={f"selected.{k}": v for k, v in (selected or {}).items()},
        metrics={**metrics, **array_norms(arrays)},
        tags={STACK_TAG: str(detector.stack_size_)} if stacked else None,
    )
    run.log_arrays(arrays)
    if len(test):
        run.log_scores("test", test.ids, test_scores, detector.threshold_, test.y)
    if len(test):  # first: a helper process may draw them while the model is logged
        run.log_evaluation_plots(test.y, test_scores, "test")
        if np.ndim(test.X) == 4:  # image data: grids of the most and least anomalous test images
            run.log_image_grids(test.X, test_scores, test.y, k=32, split="test")
    # the model takes raw rows: the dataset's fitted preprocessing becomes part of it
    detector.set_preprocessor(dataset.preprocessor or identity_preprocessor(train.X))
    model_uri = run.log_detector(detector, detector.preprocessor_.example_rows()) if spec.log_model else None
    result = ExperimentResult(
        run_id=run.run_id,
        detector=spec.detector,
        dataset=spec.dataset,
        seed=p.seed,
        val_auroc=metrics["val_auroc"],
        val_auprc=metrics["val_auprc"],
        test_auroc=metrics["test_auroc"],
        test_auprc=metrics["test_auprc"],
        train_seconds=train_seconds,
        pretrain_seconds=pretrain_seconds,
        n_train=len(train),
        n_val=len(val),
        n_test=len(test),
        model_uri=model_uri,
        params=to_json(detector.get_params(deep=False)),
        data=to_json(dataset.get_params()),
        selected=selected,
        threshold=float(detector.threshold_),
        test_precision=metrics["test_precision"],
        test_recall=metrics["test_recall"],
        leakage=p.leakage,
    )
    run.log_dict(result.as_dict(), "results.json")
    return result


def identity_preprocessor(X: np.ndarray) -> Any:
    """For a dataset without preprocessing: the model takes its samples as they are (or flattened)."""
    from .preprocessing import Preprocessor

    return Preprocessor([], input_shape=np.shape(X)[1:], examples=np.asarray(X)[:5])
