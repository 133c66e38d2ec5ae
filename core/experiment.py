"""An experiment: a spec (detector, dataset, parameters, seed) -> one tracked run -> results."""

from __future__ import annotations

import dataclasses
import math
import secrets
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .callbacks import Callback
from .errors import SadkitWarning, SpecError
from .leakage import LEAKAGE_TAG, paper_test_holdout, requested_leakage
from .metrics import auprc, auroc
from .registry import create_dataset, create_detector, get
from .serialize import to_json
from .training import configure_threads

#: seed values that mean "draw one" (the reference code crashes on -1)
RANDOM_SEEDS = (None, -1)


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
    from .tracking import shared_tracker

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
            stacklevel=2,
        )
    defaults = dataset.detector_defaults(len(train))
    leakage = requested_leakage(detector)  # only a detector that asks for it by name sees test data
    holdout = None
    if leakage:  # selection on a holdout of the test split; the test metrics are on the rest
        holdout, test = paper_test_holdout(test, seed)
    tracker = tracker or shared_tracker(spec.tracking_uri, spec.experiment)
    parts = [spec.detector, spec.dataset, getattr(dataset, "name", None), f"seed{seed}"]
    run_name = spec.run_name or "-".join(str(p) for p in parts if p)
    run_tags = {"sadkit.detector": spec.detector, "sadkit.dataset": spec.dataset, **(tags or {})}
    if defaults:
        run_tags["sadkit.defaults"] = str(defaults.get("name", "dataset"))
    if leakage:
        run_tags[LEAKAGE_TAG] = leakage
    with tracker.start_run(run_name=run_name, tags=run_tags, parent_run_id=parent_run_id, stop_on=stop_on) as run:
        params = detector.get_params(deep=False)
        data = dataset.get_params()
        run.log_params({"detector": spec.detector, "dataset": spec.dataset, "seed": seed, **params})
        run.log_params({f"data.{k}": v for k, v in data.items()})
        if holdout is not None:
            run.log_metrics({"n_test_holdout": len(holdout)})
        run.log_metrics({"n_train": len(train), "n_val": len(val), "n_test": len(test)})
        run.log_dict(
            {"train": train.summary(), "val": val.summary(), "test": test.summary()}, "data/split_summary.json"
        )
        name = "/".join(str(p) for p in (spec.dataset, getattr(dataset, "name", None)) if p)
        run.log_dataset(name, dataset.source, train.X, train.y)
        eval_set = (val.X, val.y) if len(val) else None
        if holdout is not None:
            eval_set = (holdout.X, holdout.y)
        started = time.perf_counter()
        detector.fit(train.X, train.labels, eval_set=eval_set, callbacks=[run.epoch_callback(), *callbacks])
        fit_seconds = time.perf_counter() - started
        selected = to_json(detector.selected_params())
        if selected:
            run.log_params({f"selected.{k}": v for k, v in selected.items()})
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
            seed=seed,
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
            params=to_json(params),
            data=to_json(data),
            selected=selected,
            threshold=float(detector.threshold_),
            test_precision=metrics["test_precision"],
            test_recall=metrics["test_recall"],
            leakage=leakage,
        )
        run.log_dict(result.as_dict(), "results.json")
    return result


def decision_metrics(y: Any, scores: np.ndarray, threshold: float, split: str) -> dict[str, float]:
    """Precision, recall and F1 of the 0/1 decisions at ``threshold`` on a split with ground truth, and
    the fraction it flags (NaN where a split has no anomaly or no sample)."""
    y = np.asarray(y)
    known = y != -1
    flagged = scores[known] > threshold
    truth = y[known] == 1
    tp = float((flagged & truth).sum())
    precision = tp / flagged.sum() if flagged.any() else math.nan
    recall = tp / truth.sum() if truth.any() else math.nan
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else math.nan
    return {
        f"{split}_precision": precision,
        f"{split}_recall": recall,
        f"{split}_f1": f1,
        f"{split}_flagged": float(flagged.mean()) if len(flagged) else math.nan,
    }


def identity_preprocessor(X: np.ndarray) -> Any:
    """For a dataset without preprocessing: the model takes its samples as they are (or flattened)."""
    from .preprocessing import Preprocessor

    return Preprocessor([], input_shape=np.shape(X)[1:], examples=np.asarray(X)[:5])
