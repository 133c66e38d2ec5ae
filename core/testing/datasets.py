"""Conformance checks of dataset plugins: ``load()`` returns ``(train, val, test)`` as DESIGN.md says.

Run by ``sadkit plugins check NAME --group datasets`` and :func:`sadkit.testing.assert_dataset_conforms`. A
dataset is built with its class attribute ``fast_params`` merged under the given ``params`` (the checks
load it several times). Labels follow the one convention of the public API: ground truth ``y`` 1 anomaly,
0 normal (-1 where unknown, in a training split only); ``labels`` 1 labeled anomaly, 0 labeled normal,
-1 unlabeled, and never a label in the test split. ``ids`` name each sample within the dataset, so no id
is in two splits.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SadkitError
from ._runner import CheckResult, assert_passed, expect_error, resolve_plugin, run_checks

#: the sampling protocol's ratios the checks ask for (halved while the dataset says its data cannot give them)
RATIOS = {"ratio_known_normal": 0.05, "ratio_known_outlier": 0.02, "ratio_pollution": 0.02}
#: the validation share asked for alongside them
VAL_FRACTION = 0.2
SPLITS = ("train", "val", "test")


@dataclass
class DatasetContext:
    """What every dataset check gets: the name, the class, the parameters it is built with."""

    name: str
    cls: Any
    params: dict[str, Any]
    registered: bool = False
    cache: dict[str, Any] = field(default_factory=dict)

    def new(self, **changes: Any) -> Any:
        return self.cls(**{**self.params, **changes})

    def splits(self) -> tuple[Any, Any, Any]:
        """The splits of the dataset as given (loaded once)."""
        if "splits" not in self.cache:
            dataset = self.new()
            self.cache["splits"] = tuple(dataset.load())
            self.cache["dataset"] = dataset
        return self.cache["splits"]

    def accepts(self, name: str) -> bool:
        import inspect

        try:
            parameters = inspect.signature(self.cls).parameters.values()
        except (TypeError, ValueError):
            return False
        return any(p.name == name or p.kind is p.VAR_KEYWORD for p in parameters)


# ------------------------------------------------------------------------------------ the checks
def check_three_splits(ctx: DatasetContext) -> None:
    """``load()`` returns three :class:`sadkit.Split` (train, val, test) of finite numeric samples of one shape;
    the training split is not empty (validation and test may be)."""
    from ..data import Split

    splits = ctx.splits()
    assert len(splits) == 3, f"load() returned {len(splits)} values, not (train, val, test)"
    shapes = {}
    for what, split in zip(SPLITS, splits, strict=True):
        assert isinstance(split, Split), f"the {what} split is a {type(split).__name__}, not a sadkit.Split"
        X = np.asarray(split.X)
        assert np.issubdtype(X.dtype, np.number), f"the {what} split's X has dtype {X.dtype}, not numbers"
        assert np.isfinite(X).all(), f"the {what} split's X holds NaN or infinity"
        if len(split):
            shapes[what] = tuple(X.shape[1:])
    assert len(splits[0]) > 0, "the training split is empty"
    assert len(set(shapes.values())) <= 1, f"the splits' samples differ in shape: {shapes}"


def check_label_conventions(ctx: DatasetContext) -> None:
    """Ground truth ``y``: 1 anomaly, 0 normal (-1, unknown, only in a training split); ``labels``: 1, 0 or -1,
    each label agreeing with the ground truth; the test split holds no label (a detector never learns from it)."""
    for what, split in zip(SPLITS, ctx.splits(), strict=True):
        y = np.asarray(split.y)
        allowed = {0, 1, -1} if what == "train" else {0, 1}
        found = set(np.unique(y).tolist())
        assert found <= allowed, (
            f"the {what} split's y holds {sorted(found - allowed)}; ground truth is 1 (anomaly) or 0 (normal)"
            + (", or -1 where unknown (training split only)" if what == "train" else "")
        )
        known = y != -1
        wrong = (split.labels[known] != -1) & (split.labels[known] != y[known])
        assert not wrong.any(), (
            f"{int(wrong.sum())} {what} sample(s) are labeled against their ground truth (labels: 1 anomaly, 0 normal,"
            " -1 unlabeled; the paper's +1 normal / -1 anomaly codes belong in Split(semi_y=...))"
        )
    test = ctx.splits()[2]
    assert (test.labels == -1).all(), (
        f"the test split labels {int((test.labels != -1).sum())} sample(s); build it as Split(X, y) (all unlabeled)"
    )


def check_splits_disjoint(ctx: DatasetContext) -> None:
    """No sample is in two splits: ``ids`` are unique within each split and no id is in two (the validation
    split is carved from the training pool; the test split apart from both)."""
    splits = dict(zip(SPLITS, ctx.splits(), strict=True))
    for what, split in splits.items():
        ids = np.asarray(split.ids)
        assert len(np.unique(ids)) == len(ids), f"the {what} split repeats ids (e.g. {_repeated(ids)[:3]})"
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            shared = np.intersect1d(np.asarray(splits[a].ids), np.asarray(splits[b].ids))
            assert not len(shared), (
                f"{len(shared)} id(s) are in both the {a} and the {b} split (e.g. {shared[:3].tolist()}): the splits"
                " overlap, or ids do not name samples across the dataset (number a second file's rows after the"
                " first's)"
            )


def check_same_seed_same_splits(ctx: DatasetContext) -> None:
    """Two datasets built with the same parameters (and seed) load the same splits."""
    again = ctx.new().load()
    for what, a, b in zip(SPLITS, ctx.splits(), again, strict=True):
        for part in ("X", "y", "labels", "ids"):
            if not np.array_equal(np.asarray(getattr(a, part)), np.asarray(getattr(b, part))):
                raise AssertionError(
                    f"two loads with the same seed give other {what}.{part}: draw every random choice from the"
                    " seed (np.random.default_rng(seed)), as semi_supervised_splits does"
                )


def check_ratios_honoured(ctx: DatasetContext) -> None:
    """The sampling protocol's ratios the dataset takes hold on its sampled training set (train + val):
    ``ratio_known_outlier`` and ``ratio_known_normal`` of all of it, ``ratio_pollution`` of its unlabeled part,
    ``val_fraction`` held out for validation. Ratios the data cannot give (a sadkit error saying so) are halved."""
    asked = {k: v for k, v in RATIOS.items() if ctx.accepts(k)}
    if not asked:
        return  # not the paper's protocol (e.g. your own labels as they are): nothing to hold it to
    if ctx.accepts("val_fraction"):
        asked["val_fraction"] = VAL_FRACTION
    error: SadkitError | None = None
    for _ in range(3):
        try:
            train, val, _ = ctx.new(**asked).load()
            break
        except SadkitError as err:
            error = err
            asked = {k: (v if k == "val_fraction" else v / 2) for k, v in asked.items()}
    else:
        raise AssertionError(f"no load with small ratios ({asked}, and twice and four times those): {error}")
    n = len(train) + len(val)
    y = np.concatenate([np.asarray(train.y), np.asarray(val.y)])
    labels = np.concatenate([train.labels, val.labels])
    unlabeled = labels == -1
    got = {
        "ratio_known_outlier": ((labels == 1).sum(), n),
        "ratio_known_normal": ((labels == 0).sum(), n),
        "ratio_pollution": ((unlabeled & (y == 1)).sum(), unlabeled.sum()),
        "val_fraction": (len(val), n),
    }
    for name, wanted in asked.items():
        count, total = got[name]
        share = count / max(total, 1)
        assert abs(share - wanted) <= 3 / max(total, 1) + 0.002, (
            f"{name}={wanted:g} gave {share:.4f} ({count} of {total}); use Dataset.semi_supervised_splits on the"
            " training pool, which applies the paper's protocol and the validation carve-out"
        )


def check_rejects_bad_params(ctx: DatasetContext) -> None:
    """Ratios outside [0, 1] (and an unknown parameter, for a registered dataset) are sadkit errors, raised
    by the constructor or by ``load()``, never a crash or a silent clip."""
    for name in [*RATIOS, "val_fraction"]:
        if ctx.accepts(name):
            for value in (1.5, -0.1):
                expect_error(lambda name=name, value=value: ctx.new(**{name: value}).load(), f"{name}={value}")
    if ctx.registered:
        from ..registry import create_dataset

        expect_error(lambda: create_dataset(ctx.name, **ctx.params, no_such_parameter=1), "an unknown parameter")


def check_describes_itself(ctx: DatasetContext) -> None:
    """What a run logs and uses: JSON-safe ``get_params()``, a ``source``, ``detector_defaults(n)`` as a dict,
    and ``network`` naming a registered network that builds for the samples."""
    from .. import registry

    ctx.splits()
    dataset = ctx.cache["dataset"]
    try:
        json.dumps(dataset.get_params())
    except TypeError as err:
        raise AssertionError(f"get_params() is not JSON-safe ({err}): store plain values") from err
    assert isinstance(dataset.source, str) and dataset.source, f"source is {dataset.source!r}, not a description"
    defaults = dataset.detector_defaults(len(ctx.splits()[0]))
    assert isinstance(defaults, dict), f"detector_defaults(n) returned a {type(defaults).__name__}, not a dict"
    network = dataset.network
    assert network in registry.names("networks"), (
        f"network {network!r} (default_network) is not a registered network; installed:"
        f" {', '.join(registry.names('networks'))}"
    )
    shape = tuple(np.asarray(ctx.splits()[0].X).shape[1:])
    try:
        registry.create_network(network, shape)
    except SadkitError as err:
        raise AssertionError(f"network {network!r} does not build for samples of shape {shape}: {err}") from err


DATASET_CHECKS: list[Callable[[DatasetContext], None]] = [
    check_three_splits,
    check_label_conventions,
    check_splits_disjoint,
    check_same_seed_same_splits,
    check_ratios_honoured,
    check_rejects_bad_params,
    check_describes_itself,
]


def _repeated(ids: np.ndarray) -> list[Any]:
    values, counts = np.unique(ids, return_counts=True)
    return values[counts > 1].tolist()


def check_dataset(dataset: str | type, params: dict[str, Any] | None = None) -> list[CheckResult]:
    """Run every dataset check; return one result per check (none raises).

    Args:
        dataset: a registered name or the class itself.
        params: constructor parameters (a file to read, ``root``, ...), over the class's ``fast_params``.
    """
    name, cls = resolve_plugin("datasets", dataset)
    merged = {**getattr(cls, "fast_params", {}), **(params or {})}
    ctx = DatasetContext(name=name, cls=cls, params=merged, registered=isinstance(dataset, str))
    results = run_checks(DATASET_CHECKS[:1], ctx)
    if not results[0].passed:  # nothing else can be checked on splits that cannot be loaded
        return results + [
            CheckResult(c.__name__.removeprefix("check_"), False, "not run: load() failed") for c in DATASET_CHECKS[1:]
        ]
    return results + run_checks(DATASET_CHECKS[1:], ctx)


def assert_dataset_conforms(dataset: str | type, params: dict[str, Any] | None = None) -> None:
    """Raise ``AssertionError`` naming every failed check."""
    assert_passed(check_dataset(dataset, params))
