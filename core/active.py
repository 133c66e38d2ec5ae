"""Active anomaly detection: query, label, update, evaluate (the loop behind ``sadkit active``).

A detector is wrapped in an active layer (the detector plugin named by ``layer``, ``active`` by default:
any registered detector with ``base``/``base_params``/``warm_start`` parameters whose ``score`` ranks
anomalies and whose ``predict_proba`` gives p(anomaly) in column 1). The *pool* is the training split's
unlabeled samples. Each round the strategy picks ``per_round`` samples of the pool that are not labeled
yet, the oracle labels them (1 anomaly, 0 normal), they join the labeled samples (as ``semi_y`` -1 / +1)
and the layer is refitted; then the test split is scored. Round 0 is the layer before any query.

Strategies: ``top`` queries the highest scores (the most anomalous first, as Pimentel et al.);
``uncertain`` the samples whose p(anomaly) is closest to 0.5 (the layer's decision boundary); ``random``
a uniform draw (the baseline).

Oracles: ``ground-truth`` (the dataset's labels, for benchmarks); ``prompt`` (a person answers, through a
callable the CLI supplies); ``csv:PATH`` (a table with columns ``id`` and ``label``, read and checked
once). A sample's id is its row in the dataset's own table for tabular datasets (ODDS, your own .mat,
synthetic), its position in the training split otherwise.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidInputError, SpecError
from .experiment import detector_params, resolve_seed
from .metrics import auprc, auroc
from .registry import create_dataset, create_detector, get
from .serialize import to_json
from .training import configure_threads

STRATEGIES = ("top", "uncertain", "random")
ORACLES = ("ground-truth", "prompt", "csv:PATH")


# ----------------------------------------------------------------------------------------------- oracles
class Oracle:
    """Labels queried samples: ``oracle(ids, context) -> labels`` (1 anomaly, 0 normal)."""

    name = "oracle"

    def prepare(self, pool_ids: np.ndarray) -> None:
        """Check the oracle against the ids of the pool before anything is fitted."""

    def __call__(self, ids: np.ndarray, context: Mapping[str, Any]) -> np.ndarray:
        raise NotImplementedError


class GroundTruthOracle(Oracle):
    """The dataset's own labels (for benchmarks)."""

    name = "ground-truth"

    def __init__(self, labels_by_id: Mapping[Any, int]) -> None:
        self.labels_by_id = {str(k): v for k, v in labels_by_id.items()}

    def prepare(self, pool_ids: np.ndarray) -> None:
        unknown = [i for i in pool_ids if self.labels_by_id.get(str(i), -1) not in (0, 1)]
        if unknown:
            raise InvalidInputError(
                f"the dataset has no ground truth for {len(unknown)} of its unlabeled training samples (e.g. id"
                f" {unknown[0]}): your own table's unlabeled rows are unknown; use --oracle csv:FILE or prompt"
            )

    def __call__(self, ids: np.ndarray, context: Mapping[str, Any]) -> np.ndarray:
        return np.array([self.labels_by_id[str(i)] for i in ids], dtype=np.int64)


class CsvOracle(Oracle):
    """Labels from a CSV file with a header ``id,label`` (label 1 anomaly, 0 normal).

    Every row is checked when the loop starts: ids must be ids of the pool (the dataset's sample ids: row
    positions, or a table's ``id_column``), each at most once, and labels 0 or 1. A queried sample without
    a row is an error naming the id (add the row and rerun).
    """

    name = "csv"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.labels: dict[str, int] = {}
        try:
            text = self.path.read_text()
        except FileNotFoundError as err:
            raise InvalidInputError(f"oracle CSV {self.path} does not exist") from err
        except OSError as err:
            raise InvalidInputError(f"oracle CSV {self.path} cannot be read: {err}") from err
        reader = csv.DictReader(text.splitlines())
        fields = [f.strip().lower() for f in (reader.fieldnames or [])]
        if "id" not in fields or "label" not in fields:
            raise InvalidInputError(
                f"oracle CSV {self.path} needs a header with the columns id and label (label 1 = anomaly,"
                f" 0 = normal); found {reader.fieldnames or 'no header'}"
            )
        bad_labels, bad_ids, repeated = [], [], []
        for line, row in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
            sample, raw_label = row.get("id", ""), row.get("label", "")
            if not sample:
                bad_ids.append(f"line {line}: {sample!r}")
                continue
            if raw_label not in ("0", "1"):
                bad_labels.append(f"line {line}: {raw_label!r}")
                continue
            if sample in self.labels:
                repeated.append(sample)
            self.labels[sample] = int(raw_label)
        if bad_labels:
            raise InvalidInputError(
                f"oracle CSV {self.path}: labels must be 0 (normal) or 1 (anomaly); found {', '.join(bad_labels[:5])}"
                + (f" and {len(bad_labels) - 5} more" if len(bad_labels) > 5 else "")
            )
        if bad_ids:
            raise InvalidInputError(
                f"oracle CSV {self.path}: every row needs an id; found empty ones at {', '.join(bad_ids[:5])}"
            )
        if repeated:
            raise InvalidInputError(f"oracle CSV {self.path}: ids given more than once: {sorted(set(repeated))[:10]}")

    def prepare(self, pool_ids: np.ndarray) -> None:
        unknown = sorted(set(self.labels) - {str(i) for i in pool_ids})
        if unknown:
            shown = ", ".join(map(str, unknown[:10])) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
            raise InvalidInputError(
                f"oracle CSV {self.path} labels {len(unknown)} id(s) that are not unlabeled training samples"
                f" of this dataset: {shown}; the pool's ids run from {min(pool_ids)} to"
                f" {max(pool_ids)} ({len(pool_ids)} samples)"
            )

    def __call__(self, ids: np.ndarray, context: Mapping[str, Any]) -> np.ndarray:
        missing = [i for i in ids if str(i) not in self.labels]
        if missing:
            raise InvalidInputError(
                f"oracle CSV {self.path} has no label for the queried sample id(s) {missing[:10]}"
                f" (round {context.get('round')}); add rows 'id,label' for them and run again"
            )
        return np.array([self.labels[str(i)] for i in ids], dtype=np.int64)


class PromptOracle(Oracle):
    """A person answers: ``ask(id, description) -> 0 or 1`` for each queried sample."""

    name = "prompt"

    def __init__(self, ask: Callable[[int, str], int]) -> None:
        self.ask = ask

    def __call__(self, ids: np.ndarray, context: Mapping[str, Any]) -> np.ndarray:
        X, scores, probs = context["X"], context["scores"], context["proba"]
        labels = []
        for i, pos in zip(ids, context["positions"], strict=True):
            values = np.asarray(X[pos]).reshape(-1)
            shown = ", ".join(f"{v:.3g}" for v in values[:8]) + (", ..." if values.size > 8 else "")
            description = f"sample {i}: score {scores[pos]:.4g}, p(anomaly) {probs[pos]:.3f}; features [{shown}]"
            answer = int(self.ask(i, description))
            if answer not in (0, 1):
                raise InvalidInputError(f"the answer for sample {i} must be 0 or 1, got {answer!r}")
            labels.append(answer)
        return np.array(labels, dtype=np.int64)


def make_oracle(spec: str, *, ground_truth: Mapping[int, int], ask: Callable[[int, str], int] | None = None) -> Oracle:
    """``ground-truth``, ``prompt`` (needs ``ask``) or ``csv:PATH``."""
    spec = (spec or "").strip()
    if spec == "ground-truth":
        return GroundTruthOracle(ground_truth)
    if spec == "prompt":
        if ask is None:
            raise InvalidInputError("the prompt oracle needs someone to ask: run it from the command line")
        return PromptOracle(ask)
    if spec.startswith("csv:"):
        path = spec[4:].strip()
        if not path:
            raise InvalidInputError("--oracle csv:PATH needs a path, e.g. csv:labels.csv")
        return CsvOracle(path)
    raise InvalidInputError(f"unknown oracle {spec!r}; use one of {', '.join(ORACLES)}")


# ----------------------------------------------------------------------------------------------- queries
def select(
    strategy: str, candidates: np.ndarray, scores: np.ndarray, proba: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """``k`` positions out of ``candidates`` (positions into ``scores``/``proba``) by ``strategy``.

    Ties are broken by position (stable sorts), so the same scores give the same queries.
    """
    k = min(int(k), len(candidates))
    if strategy == "top":
        order = np.argsort(-scores[candidates], kind="stable")
    elif strategy == "uncertain":
        order = np.argsort(np.abs(proba[candidates] - 0.5), kind="stable")
    elif strategy == "random":
        return np.sort(rng.choice(candidates, size=k, replace=False))
    else:
        raise InvalidInputError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    return candidates[order[:k]]


# ------------------------------------------------------------------------------------------------ spec
@dataclass
class ActiveSpec:
    """What ``sadkit active`` runs (see the module docstring)."""

    detector: str
    dataset: str
    budget: int
    per_round: int
    oracle: str = "ground-truth"
    strategy: str = "top"
    params: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    layer: str = "active"
    layer_params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = 0
    device: str = "auto"
    experiment: str | None = None
    tracking_uri: str | None = None
    threads: int | None = None
    run_name: str | None = None


@dataclass
class ActiveResult:
    run_id: str
    detector: str
    dataset: str
    strategy: str
    oracle: str
    seed: int
    budget: int
    per_round: int
    pool_size: int
    pool_anomaly_rate: float | None
    rounds: list[dict[str, Any]]
    params: dict[str, Any]
    data: dict[str, Any]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_spec(spec: ActiveSpec) -> None:
    if spec.strategy not in STRATEGIES:
        raise InvalidInputError(f"unknown strategy {spec.strategy!r}; use one of {', '.join(STRATEGIES)}")
    for name in ("budget", "per_round"):
        value = getattr(spec, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
    if "seed" in spec.data:
        raise SpecError("give the seed once, with --seed, not as a data parameter")
    det_cls = get("detectors", spec.detector)
    if not det_cls.has_signal():
        from .errors import SignalNotAvailableError

        raise SignalNotAvailableError(
            f"detector {spec.detector!r} has no per-sample signal to put the active layer on (it implements"
            " neither _signal nor transform); choose one that has, e.g. esad, deepsad or deepsvdd"
        )
    layer_cls = get("detectors", spec.layer)
    missing = {"base", "base_params", "warm_start"} - set(layer_cls._get_param_names())
    if missing:
        raise InvalidInputError(
            f"--layer {spec.layer!r} is not an active layer: it lacks the parameter(s) {', '.join(sorted(missing))}"
        )


def run_active(
    spec: ActiveSpec,
    *,
    ask: Callable[[int, str], int] | None = None,
    on_round: Callable[[dict[str, Any]], None] | None = None,
    tracker: Any = None,
) -> ActiveResult:
    """Run the active loop of ``spec`` in one MLflow run and return its curve.

    Args:
        ask: the person behind the ``prompt`` oracle: ``ask(id, description) -> 0 or 1``.
        on_round: called with every round's record (for progress output).
    """
    from .tracking import Tracker

    _check_spec(spec)
    seed = resolve_seed(spec.seed)
    configure_threads(spec.threads)
    dataset = create_dataset(spec.dataset, seed=seed, **spec.data)
    train, val, test = dataset.load()
    X = np.asarray(train.X)
    y = np.asarray(train.y).astype(np.int64)
    semi = np.asarray(train.semi_y).astype(np.int64).copy()
    ids = np.asarray(train.ids)
    pool = np.flatnonzero(semi == 0)
    if spec.budget > len(pool):
        raise InvalidInputError(
            f"--budget {spec.budget} is larger than the pool: {spec.dataset} ({dataset.get_params().get('name', '')})"
            f" has {len(pool)} unlabeled training samples with seed {seed}; use --budget {len(pool)} or less"
        )
    oracle = make_oracle(spec.oracle, ground_truth=dict(zip(ids.tolist(), y.tolist(), strict=True)), ask=ask)
    oracle.prepare(ids[pool])
    pool_rate = float(y[pool].mean()) if len(pool) else None

    base_params = detector_params(
        spec.detector, spec.params, dataset, seed, spec.device, dataset.detector_defaults(len(train))
    )
    layer = create_detector(
        spec.layer, **{**spec.layer_params, "base": spec.detector, "base_params": base_params, "warm_start": True}
    )
    tracker = tracker or Tracker(spec.tracking_uri, spec.experiment)
    name = getattr(dataset, "name", None)
    run_name = spec.run_name or "-".join(
        str(p) for p in ("active", spec.detector, spec.dataset, name, spec.strategy, f"seed{seed}") if p
    )
    tags = {"sadkit.detector": spec.detector, "sadkit.dataset": spec.dataset, "sadkit.active": spec.strategy}
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7,)))
    started = time.perf_counter()
    rounds: list[dict[str, Any]] = []
    with tracker.start_run(run_name=run_name, tags=tags) as run:
        run.log_params(
            {
                "detector": spec.detector,
                "dataset": spec.dataset,
                "seed": seed,
                "strategy": spec.strategy,
                "oracle": spec.oracle,
                "budget": spec.budget,
                "per_round": spec.per_round,
                "layer": spec.layer,
                **{f"base.{k}": v for k, v in base_params.items()},
                **{f"layer.{k}": v for k, v in spec.layer_params.items()},
            }
        )
        run.log_params({f"data.{k}": v for k, v in dataset.get_params().items()})
        run.log_metrics({"pool_size": len(pool), "pool_anomaly_rate": pool_rate})
        layer.fit(X, semi_y=semi)
        queried: list[int] = []
        found = 0
        round_no = 0
        while True:
            test_scores = layer.decision_function(test.X) if len(test) else np.empty(0)  # own tables: none
            previous = rounds[-1]["queried"] if rounds else 0
            record = {
                "round": round_no,
                "queried": len(queried),
                "anomalies_found": found,
                "test_auroc": auroc(test.y, test_scores),
                "test_auprc": auprc(test.y, test_scores),
                "queried_ids": [to_json(ids[p]) for p in queried[previous:]],
            }
            rounds.append(record)
            run.log_metrics(
                {k: record[k] for k in ("test_auroc", "test_auprc", "anomalies_found")}, step=record["queried"]
            )
            if on_round is not None:
                on_round(record)
            remaining = spec.budget - len(queried)
            if remaining <= 0:
                break
            candidates = np.setdiff1d(pool, np.asarray(queried, dtype=np.int64), assume_unique=True)
            scores = layer.decision_function(X)
            proba = layer.predict_proba(X)[:, 1]
            picked = select(spec.strategy, candidates, scores, proba, min(spec.per_round, remaining), rng)
            context = {"round": round_no + 1, "X": X, "scores": scores, "proba": proba, "positions": picked}
            labels = np.asarray(oracle(ids[picked], context), dtype=np.int64)
            semi[picked] = np.where(labels == 1, -1, 1)
            queried.extend(int(p) for p in picked)
            found += int(labels.sum())
            round_no += 1
            layer.fit(X, semi_y=semi)
        seconds = time.perf_counter() - started
        run.log_active_curve(rounds, title=f"{spec.detector} on {name or spec.dataset}, {spec.strategy} queries")
        result = ActiveResult(
            run_id=run.run_id,
            detector=spec.detector,
            dataset=spec.dataset,
            strategy=spec.strategy,
            oracle=spec.oracle,
            seed=seed,
            budget=spec.budget,
            per_round=spec.per_round,
            pool_size=int(len(pool)),
            pool_anomaly_rate=pool_rate,
            rounds=rounds,
            params={**{k: to_json(v) for k, v in base_params.items()}},
            data={k: to_json(v) for k, v in dataset.get_params().items()},
            seconds=seconds,
        )
        run.log_metrics({"active_seconds": seconds})
        run.log_dict(result.as_dict(), "active.json")
    return result


