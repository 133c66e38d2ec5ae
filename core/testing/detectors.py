"""Conformance checks of detector plugins: the scikit-learn estimator contract with PyOD's vocabulary.

Run by ``sadkit plugins check NAME`` and :func:`sadkit.testing.assert_detector_conforms`. Detectors run with
their class attribute ``fast_params`` merged under the given ``params``, so that the checks stay quick. The
checks of the parameters (``__init__``, ``set_params``, ``search_space``, scikit-learn's own) are in
:mod:`sadkit.testing.detector_params`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone

from ..detector import Detector
from ..errors import NotFittedError, SadkitError
from ._runner import CheckResult, assert_passed, expect_error, resolve_plugin, run_checks


@dataclass
class DetectorContext:
    """What every detector check gets: the class, the parameters it is built with, and small data."""

    cls: type[Detector]
    params: dict[str, Any]
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    cache: dict[str, Any] = field(default_factory=dict)

    def new(self, **changes: Any) -> Detector:
        return self.cls(**{**self.params, **changes})

    def fitted(self, **changes: Any) -> Detector:
        return self.new(**changes).fit(self.X, self.y)

    def scores(self, detector: Detector) -> np.ndarray:
        """``detector`` fitted on the checks' data, scored on their test samples."""
        return detector.fit(self.X, self.y).decision_function(self.X_test)


def make_data(
    input_shape: tuple[int, ...] = (5,), n_train: int = 96, n_test: int = 40, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Small data in [0, 1]: mostly normals, a few labeled anomalies and labeled normals.

    Returns ``(X, y, X_test)``; ``y`` holds the labels: 1 for the first three samples (labeled anomalies,
    drawn apart from the normals), 0 for the last five (labeled normals), -1 (unlabeled) for the rest.
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(0.5, 0.1, size=(n_train, *input_shape))
    y = np.full(n_train, -1, dtype=np.int64)
    X[:6] = rng.normal(0.9, 0.05, size=(6, *input_shape))
    y[:3] = 1
    y[-5:] = 0
    X_test = rng.normal(0.5, 0.15, size=(n_test, *input_shape))
    return np.clip(X, 0, 1).astype(np.float32), y, np.clip(X_test, 0, 1).astype(np.float32)


# ------------------------------------------------------------------------------------ the checks
def check_fit_score_shapes(ctx: DetectorContext) -> None:
    """``fit`` returns self; ``decision_function`` returns one finite float per sample."""
    detector = ctx.new()
    assert detector.fit(ctx.X, ctx.y) is detector, "fit must return self"
    scores = detector.decision_function(ctx.X_test)
    assert isinstance(scores, np.ndarray), f"decision_function returned {type(scores).__name__}, not a numpy array"
    assert scores.shape == (len(ctx.X_test),), (
        f"decision_function returned shape {scores.shape} for {len(ctx.X_test)} samples"
    )
    assert np.issubdtype(scores.dtype, np.floating), f"scores have dtype {scores.dtype}"
    assert np.isfinite(scores).all(), "scores contain NaN or infinity"


def check_decision_vocabulary(ctx: DetectorContext) -> None:
    """PyOD's and scikit-learn's vocabulary agree: ``score_samples`` is ``-decision_function``; ``predict``
    is 0/1 and flags exactly the samples scoring above ``threshold_``; ``predict_proba`` rows are
    probabilities; ``score(X, y)`` is one number (the AUROC)."""
    detector = ctx.fitted()
    scores = detector.decision_function(ctx.X_test)
    assert np.array_equal(detector.score_samples(ctx.X_test), -scores), "score_samples is not -decision_function"
    assert np.isfinite(detector.threshold_), f"threshold_ is {detector.threshold_}"
    labels = detector.predict(ctx.X_test)
    assert set(np.unique(labels)) <= {0, 1}, f"predict returned {np.unique(labels)}, not 0/1"
    assert np.array_equal(labels, (scores > detector.threshold_).astype(int)), "predict disagrees with threshold_"
    proba = detector.predict_proba(ctx.X_test)
    assert proba.shape == (len(ctx.X_test), 2), f"predict_proba returned shape {proba.shape}"
    assert np.allclose(proba.sum(axis=1), 1.0) and (proba >= 0).all(), "predict_proba rows are not probabilities"
    truth = np.r_[np.ones(5, dtype=int), np.zeros(len(ctx.X_test) - 5, dtype=int)]
    value = detector.score(ctx.X_test, truth)
    assert np.isscalar(value) and 0.0 <= value <= 1.0, f"score(X, y) returned {value!r}, not an AUROC"
    flagged = detector.labels_.mean()
    expected = detector.get_params().get("contamination", Detector.DEFAULT_CONTAMINATION)
    if detector.get_params().get("threshold") is None:
        assert abs(flagged - expected) <= 0.05 + 2 / len(ctx.X), (
            f"labels_ flags {flagged:.2f} of the training samples, contamination is {expected}"
        )


def check_labels_convention(ctx: DetectorContext) -> None:
    """Labels are the users' convention: ``fit(X, y)`` with 1 = anomaly equals ``fit(X, semi_y=...)``
    with the paper's -1 for the same samples (so a PyOD habit never turns anomalies into normals)."""
    from ..data import to_semi_y

    a = ctx.fitted().decision_function(ctx.X_test)
    b = ctx.new().fit(ctx.X, semi_y=to_semi_y(ctx.y)).decision_function(ctx.X_test)
    assert np.allclose(a, b, rtol=1e-5, atol=1e-7), "fit(X, y) and fit(X, semi_y=...) with the same labels differ"


def check_fit_without_labels(ctx: DetectorContext) -> None:
    """``fit(X)`` without semi-supervised labels works (everything unlabeled).

    A detector that declares ``requires_labels = True`` must instead refuse with a sadkit error
    whose message says why (the supervised baseline cannot learn without labeled anomalies).
    """
    if getattr(ctx.cls, "requires_labels", False):
        try:
            ctx.new().fit(ctx.X)
        except SadkitError as err:
            assert "label" in str(err).lower(), f"fit(X) without labels raised {err!r}, which does not say why"
            return
        except Exception as err:  # noqa: BLE001 - the point is to name the wrong exception type
            raise AssertionError(
                f"fit(X) without labels raised {type(err).__name__} ({err}), not a sadkit error"
            ) from err
        raise AssertionError("requires_labels is True but fit(X) without labels was accepted")
    scores = ctx.new().fit(ctx.X).decision_function(ctx.X_test)
    assert scores.shape == (len(ctx.X_test),)


def check_same_seed_same_scores(ctx: DetectorContext) -> None:
    """The seed is honoured: two fits with the same parameters (and seed) give the same scores."""
    a = ctx.fitted().decision_function(ctx.X_test)
    b = ctx.fitted().decision_function(ctx.X_test)
    if np.allclose(a, b, rtol=1e-5, atol=1e-7):
        return
    seed = ctx.new().get_params().get("seed", "<none>")
    how = (
        f"the detector does not honour its seed (seed={seed!r}): draw every random number in _fit from it"
        " (numpy: np.random.default_rng(seed); torch: sadkit.training.seed_everything(seed))"
        if seed != "<none>"
        else "the detector has no seed parameter and is not deterministic: add `seed` and draw every random"
        " number from it"
    )
    raise AssertionError(
        f"two fits with the same parameters give scores that differ by up to {np.abs(a - b).max():.3g}: {how}"
    )


def check_save_load_identical(ctx: DetectorContext) -> None:
    """``save`` then ``load`` (weights_only) gives identical scores and parameters."""
    detector = ctx.fitted()
    with tempfile.TemporaryDirectory() as tmp:
        detector.save(tmp)
        loaded = ctx.cls.load(tmp)
    assert type(loaded) is type(detector), f"loaded a {type(loaded).__name__}"
    assert loaded.get_params() == {k: _listify(v) for k, v in detector.get_params().items()}, "parameters changed"
    a, b = detector.decision_function(ctx.X_test), loaded.decision_function(ctx.X_test)
    assert np.array_equal(a, b), f"scores after loading differ by up to {np.abs(a - b).max():.3g}"


def check_clone_unfitted(ctx: DetectorContext) -> None:
    """``sklearn.base.clone`` of a fitted detector is unfitted and has the same parameters."""
    detector = ctx.fitted()
    copy = clone(detector)
    assert not copy.is_fitted, "the clone is already fitted"
    assert copy.get_params() == detector.get_params()
    try:
        copy.decision_function(ctx.X_test)
    except NotFittedError:
        return
    raise AssertionError("score on an unfitted clone did not raise NotFittedError")


def check_rejects_bad_input(ctx: DetectorContext) -> None:
    """NaN/inf features, wrong shapes and bad labels raise sadkit errors, not crashes."""
    X_nan = ctx.X.copy()
    X_nan[3, 0] = np.nan
    expect_error(lambda: ctx.new().fit(X_nan, ctx.y), "fit with NaN features")
    X_inf = ctx.X.copy()
    X_inf[0, 0] = np.inf
    expect_error(lambda: ctx.new().fit(X_inf, ctx.y), "fit with infinite features")
    bad_labels = ctx.y.copy()
    bad_labels[0] = 2
    expect_error(lambda: ctx.new().fit(ctx.X, bad_labels), "fit with a label 2")
    expect_error(lambda: ctx.new().fit(ctx.X, ctx.y[:-1]), "fit with too few labels")
    expect_error(lambda: ctx.new().fit(ctx.X.reshape(-1)), "fit with 1-D X")
    fitted = ctx.fitted()
    wider = np.concatenate([ctx.X_test, ctx.X_test[:, :1]], axis=1)
    expect_error(lambda: fitted.decision_function(wider), "score with another number of features")
    test_nan = ctx.X_test.copy()
    test_nan[0, 0] = np.nan
    expect_error(lambda: fitted.decision_function(test_nan), "score with NaN features")


def _listify(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _resolve(detector: str | type[Detector]) -> type[Detector]:
    _, cls = resolve_plugin("detectors", detector)
    if not (isinstance(cls, type) and issubclass(cls, Detector)):
        raise SadkitError(f"{cls!r} is not a sadkit Detector subclass")
    return cls


def check_detector(
    detector: str | type[Detector],
    params: dict[str, Any] | None = None,
    input_shape: tuple[int, ...] = (5,),
    *,
    sklearn: bool = True,
) -> list[CheckResult]:
    """Run every detector check; return one result per check (none raises).

    Args:
        detector: a registered name or the class itself.
        params: constructor parameters, over the class's ``fast_params``.
        input_shape: the shape of one sample of the checks' data.
        sklearn: include scikit-learn's ``check_estimator`` (a few seconds for a deep detector; sadkit's
            own test suite runs it separately, check by check).
    """
    from .detector_params import check_sklearn_estimator

    cls = _resolve(detector)
    merged = {**cls.fast_params, **(params or {})}
    X, y, X_test = make_data(tuple(input_shape))
    ctx = DetectorContext(cls=cls, params=merged, X=X, y=y, X_test=X_test)
    return run_checks(CHECKS if sklearn else [c for c in CHECKS if c is not check_sklearn_estimator], ctx)


def assert_detector_conforms(
    detector: str | type[Detector],
    params: dict[str, Any] | None = None,
    input_shape: tuple[int, ...] = (5,),
    *,
    sklearn: bool = True,
) -> None:
    """Raise ``AssertionError`` naming every failed check."""
    assert_passed(check_detector(detector, params, input_shape, sklearn=sklearn))


def _checks() -> list[Callable[[DetectorContext], None]]:
    from . import detector_params as p

    return [
        p.check_init_stores_params,
        p.check_init_does_no_work,
        p.check_get_set_params,
        check_fit_score_shapes,
        check_decision_vocabulary,
        check_labels_convention,
        check_fit_without_labels,
        check_same_seed_same_scores,
        p.check_set_params_reaches_fit,
        check_save_load_identical,
        check_clone_unfitted,
        check_rejects_bad_input,
        p.check_search_space,
        p.check_sklearn_estimator,
    ]


#: every detector check, in the order they run
CHECKS: list[Callable[[DetectorContext], None]] = _checks()
