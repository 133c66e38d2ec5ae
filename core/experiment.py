"""An experiment: a spec (detector, dataset, parameters, seed) -> one tracked run -> results."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import secrets
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .callbacks import Callback
from .errors import SadkitWarning, SpecError
from .leakage import LEAKAGE_TAG, paper_test_holdout, requested_leakage
from .metrics import auprc, auroc, decision_metrics
from .registry import create_dataset, create_detector, get
from .serialize import to_json
from .training import configure_threads

#: seed values that mean "draw one" (the reference code crashes on -1)
RANDOM_SEEDS = (None, -1)
#: the tag of a run whose model trained stacked with others: the stack's size
STACK_TAG = "sadkit.stack_size"


@dataclass
class ExperimentSpec:
    """What to run. The YAML form has the same keys (see ``projects/``).

    Attributes:
        detector: registered detector name (``deepsad``).
        dataset: registered dataset name (``odds``).
        params: detector parameters; ``seed``, ``device`` and (for deep detectors) ``net_name`` are
            filled in from the spec and the dataset unless given.
        data: dataset parameters (``name``, ``ratio_known_outlier``, ...).
        seed: one seed for the data sampling, the weights and the batch order; -1 or None draws one.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        experiment: MLflow experiment name.
        tracking_uri: MLflow tracking URI (default: ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``).
        threads: torch CPU threads (default: all cores available to the process).
        log_model: log the fitted detector as an MLflow model.
        run_name: MLflow run name (default ``<detector>-<dataset>-seed<N>``).
    """

    detector: str
    dataset: str
    params: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    seed: int | None = 0
    device: str = "auto"
    experiment: str | None = None
    tracking_uri: str | None = None
    threads: int | None = None
    log_model: bool = True
    run_name: str | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "spec") -> ExperimentSpec:
        """Build a spec, naming any unknown or missing key."""
        if not isinstance(raw, Mapping):
            raise SpecError(f"{source}: expected a mapping of keys, got {type(raw).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise SpecError(f"{source}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        missing = [k for k in ("detector", "dataset") if not raw.get(k)]
        if missing:
            raise SpecError(f"{source}: missing key(s) {', '.join(missing)}")
        for key in ("params", "data"):
            if raw.get(key) is not None and not isinstance(raw[key], Mapping):
                raise SpecError(f"{source}: '{key}' must be a mapping, got {raw[key]!r}")
        values = {k: v for k, v in raw.items() if v is not None or k == "seed"}
        values["params"] = dict(raw.get("params") or {})
        values["data"] = dict(raw.get("data") or {})
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path) -> ExperimentSpec:
        return cls.from_dict(read_spec_file(path), source=str(path))


def read_spec_file(path: str | Path) -> Any:
    """The YAML of a spec file, or a :class:`SpecError` saying why it cannot be read."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as err:
        raise SpecError(f"spec file {path} does not exist") from err
    except yaml.YAMLError as err:
        raise SpecError(f"{path} is not valid YAML: {err}") from err


@dataclass
class ExperimentResult:
    """What a run measured (also logged to MLflow as metrics and ``results.json``)."""

    run_id: str
    detector: str
    dataset: str
    seed: int
    val_auroc: float
    val_auprc: float
    test_auroc: float
    test_auprc: float
    train_seconds: float
    pretrain_seconds: float
    n_train: int
    n_val: int
    n_test: int
    model_uri: str | None
    params: dict[str, Any]
    data: dict[str, Any]
    #: hyperparameters the detector chose itself (e.g. on the validation split); see Detector.selected_params
    selected: dict[str, Any] = field(default_factory=dict)
    #: the fitted decision: samples scoring above ``threshold`` are flagged (``predict`` gives 1)
    threshold: float = math.nan
    #: precision and recall of those decisions on the test split (NaN without a test split)
    test_precision: float = math.nan
    test_recall: float = math.nan
    #: a leaky protocol the detector asked for (``paper_test_holdout``: test metrics on the other 90%), or None
    leakage: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def resolve_seed(seed: int | None) -> int:
    """The seed to use: the given one, or a fresh one for -1/None (logged, so the run is repeatable)."""
    if seed in RANDOM_SEEDS:
        return secrets.randbelow(2**31 - 1)
    seed = int(seed)
    if seed < 0:
        raise SpecError(f"seed must be >= 0, or -1 to draw one; got {seed}")
    return seed


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
) -> list[ExperimentResult]:
    """Run several specs, each in its own MLflow run, fitting their detectors together.

    Detectors that can train as one grouped network (same architecture and schedule, training sets of one
    size: see :func:`sadkit.stacked_fit.fit_together`) train stacked unless ``stack`` is False; every spec
    still gets its own run with its own parameters, per-epoch metrics, center and model, as
    :func:`run_experiment` gives it. All runs are open during the fit: if it raises, each ends FAILED.
    """
    from .stacked_fit import fit_together
    from .tracking import shared_tracker

    prepared = [_prepare(spec) for spec in specs]
    callbacks = list(callbacks) if callbacks is not None else [()] * len(specs)
    tags = list(tags) if tags is not None else [{}] * len(specs)
    tracker = tracker or shared_tracker(specs[0].tracking_uri, specs[0].experiment)
    with contextlib.ExitStack() as runs_open:
        runs = [
            runs_open.enter_context(_open_run(p, tracker, parent_run_id, t, stop_on))
            for p, t in zip(prepared, tags, strict=True)
        ]
        started = time.perf_counter()
        fit_together(
            [p.detector for p in prepared],
            [(p.train.X, p.train.labels) for p in prepared],
            eval_sets=[_eval_set(p) for p in prepared],
            callbacks=[[run.epoch_callback(), *cbs] for run, cbs in zip(runs, callbacks, strict=True)],
            stack=stack,
        )
        fit_seconds = (time.perf_counter() - started) / len(prepared)
        return [_finish(p, run, fit_seconds) for p, run in zip(prepared, runs, strict=True)]


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
        run.log_params({"detector": spec.detector, "dataset": spec.dataset, "seed": p.seed})
        run.log_params(p.detector.get_params(deep=False))
        run.log_params({f"data.{k}": v for k, v in dataset.get_params().items()})
        if p.holdout is not None:
            run.log_metrics({"n_test_holdout": len(p.holdout)})
        run.log_metrics({"n_train": len(train), "n_val": len(val), "n_test": len(test)})
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
    if selected:
        run.log_params({f"selected.{k}": v for k, v in selected.items()})
    if getattr(detector, "stack_size_", 1) > 1:
        run.set_tags({STACK_TAG: str(detector.stack_size_)})
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
    run.log_metrics(metrics)
    run.log_arrays(detector.tracked_arrays())
    if len(test):
        run.log_scores("test", test.ids, test_scores, detector.threshold_, test.y)
    # the model takes raw rows: the dataset's fitted preprocessing becomes part of it
    detector.set_preprocessor(dataset.preprocessor or identity_preprocessor(train.X))
    model_uri = run.log_detector(detector, detector.preprocessor_.example_rows()) if spec.log_model else None
    if len(test):
        run.log_evaluation_plots(test.y, test_scores, "test")
        if np.ndim(test.X) == 4:  # image data: grids of the most and least anomalous test images
            run.log_image_grids(test.X, test_scores, test.y, k=32, split="test")
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
