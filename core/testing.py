"""Conformance checks every detector must pass: built-in and third-party alike.

From pytest::

    from sadkit.testing import assert_detector_conforms

    def test_my_detector():
        assert_detector_conforms("mydetector")          # a registered name, or the class itself

From the command line: ``sadkit plugins check mydetector`` (exit 0 when every check passes).
Detectors run with their class attribute ``fast_params`` merged under the given ``params`` so that
the checks stay quick.
"""

from __future__ import annotations

import inspect
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import clone

from .detector import Detector
from .errors import NotFittedError, SadkitError


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check."""

    name: str
    passed: bool
    message: str = ""


@dataclass
class _Context:
    cls: type[Detector]
    params: dict[str, Any]
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray

    def new(self) -> Detector:
        return self.cls(**self.params)

    def fitted(self) -> Detector:
        return self.new().fit(self.X, self.y)


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


def _expect_error(fn: Callable[[], Any], what: str) -> None:
    try:
        fn()
    except SadkitError:
        return
    except Exception as err:  # noqa: BLE001 - the point is to name the wrong exception type
        raise AssertionError(f"{what} raised {type(err).__name__} ({err}), not a sadkit error") from err
    raise AssertionError(f"{what} was accepted silently")


# ------------------------------------------------------------------------------------ the checks
def check_init_stores_params(ctx: _Context) -> None:
    """``__init__`` only stores its arguments: every parameter reads back as given, nothing fitted."""
    signature = inspect.signature(ctx.cls.__init__)
    varargs = [p.name for p in signature.parameters.values() if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    assert not varargs, f"__init__ must list its parameters explicitly, not {varargs}"
    detector = ctx.new()
    for name, parameter in signature.parameters.items():
        if name == "self":
            continue
        expected = ctx.params.get(name, parameter.default)
        got = getattr(detector, name, "<missing>")
        assert got is expected or got == expected, f"__init__ stored {name}={got!r}, given {expected!r}"
    learned = [k for k in vars(detector) if k.endswith("_") and not k.startswith("_")]
    assert not learned, f"__init__ set learned attributes {learned}"


def check_get_set_params(ctx: _Context) -> None:
    """``get_params``/``set_params`` round-trip, so a study can rebuild the detector from a dict."""
    detector = ctx.new()
    params = detector.get_params()
    rebuilt = ctx.cls(**params)
    assert rebuilt.get_params() == params, "rebuilding from get_params() gives other parameters"
    assert detector.set_params(**params) is detector, "set_params must return self"


def check_fit_score_shapes(ctx: _Context) -> None:
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


def check_decision_vocabulary(ctx: _Context) -> None:
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


def check_labels_convention(ctx: _Context) -> None:
    """Labels are the users' convention: ``fit(X, y)`` with 1 = anomaly equals ``fit(X, semi_y=...)``
    with the paper's -1 for the same samples (so a PyOD habit never turns anomalies into normals)."""
    from .data import to_semi_y

    a = ctx.fitted().decision_function(ctx.X_test)
    b = ctx.new().fit(ctx.X, semi_y=to_semi_y(ctx.y)).decision_function(ctx.X_test)
    assert np.allclose(a, b, rtol=1e-5, atol=1e-7), "fit(X, y) and fit(X, semi_y=...) with the same labels differ"


def check_fit_without_labels(ctx: _Context) -> None:
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


def check_same_seed_same_scores(ctx: _Context) -> None:
    """Two fits with the same parameters (and seed) give the same scores."""
    a = ctx.fitted().decision_function(ctx.X_test)
    b = ctx.fitted().decision_function(ctx.X_test)
    assert np.allclose(a, b, rtol=1e-5, atol=1e-7), f"scores differ by up to {np.abs(a - b).max():.3g}"


def check_save_load_identical(ctx: _Context) -> None:
    """``save`` then ``load`` (weights_only) gives identical scores and parameters."""
    detector = ctx.fitted()
    with tempfile.TemporaryDirectory() as tmp:
        detector.save(tmp)
        loaded = ctx.cls.load(tmp)
    assert type(loaded) is type(detector), f"loaded a {type(loaded).__name__}"
    assert loaded.get_params() == {k: _listify(v) for k, v in detector.get_params().items()}, "parameters changed"
    a, b = detector.decision_function(ctx.X_test), loaded.decision_function(ctx.X_test)
    assert np.array_equal(a, b), f"scores after loading differ by up to {np.abs(a - b).max():.3g}"


def check_clone_unfitted(ctx: _Context) -> None:
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


def check_rejects_bad_input(ctx: _Context) -> None:
    """NaN/inf features, wrong shapes and bad labels raise sadkit errors, not crashes."""
    X_nan = ctx.X.copy()
    X_nan[3, 0] = np.nan
    _expect_error(lambda: ctx.new().fit(X_nan, ctx.y), "fit with NaN features")
    X_inf = ctx.X.copy()
    X_inf[0, 0] = np.inf
    _expect_error(lambda: ctx.new().fit(X_inf, ctx.y), "fit with infinite features")
    bad_labels = ctx.y.copy()
    bad_labels[0] = 2
    _expect_error(lambda: ctx.new().fit(ctx.X, bad_labels), "fit with a label 2")
    _expect_error(lambda: ctx.new().fit(ctx.X, ctx.y[:-1]), "fit with too few labels")
    _expect_error(lambda: ctx.new().fit(ctx.X.reshape(-1)), "fit with 1-D X")
    fitted = ctx.fitted()
    wider = np.concatenate([ctx.X_test, ctx.X_test[:, :1]], axis=1)
    _expect_error(lambda: fitted.decision_function(wider), "score with another number of features")
    test_nan = ctx.X_test.copy()
    test_nan[0, 0] = np.nan
    _expect_error(lambda: fitted.decision_function(test_nan), "score with NaN features")


def check_search_space(ctx: _Context) -> None:
    """Points of the detector's own Optuna space (``search_space``) build detectors that fit and score.

    Every returned key is a constructor parameter, suggested on the trial under the same name (a study
    logs and resumes by those names), and the fitted detector holds the value. No space: nothing to check.
    """
    from .tuning import sample_search_space

    names = set(ctx.cls._get_param_names())
    for values, suggested in sample_search_space(ctx.cls, 2):
        unknown = sorted(set(values) - names)
        assert not unknown, f"search_space returned {unknown}, which are not parameters of {ctx.cls.__name__}"
        renamed = sorted(set(values) - suggested)
        assert not renamed, f"search_space returned {renamed} without suggesting them under those names"
        detector = ctx.cls(**{**ctx.params, **values}).fit(ctx.X, ctx.y)
        held = {k: detector.get_params()[k] for k in values}
        assert held == values, f"search_space point {values} became {held}"
        scores = detector.decision_function(ctx.X_test)
        assert np.isfinite(scores).all(), f"scores at search_space point {values} contain NaN or infinity"


def check_sklearn_estimator(ctx: _Context) -> None:
    """scikit-learn's own ``check_estimator`` passes, but for the checks declared in
    :mod:`sadkit.estimator_checks` (PyOD's 0/1 vocabulary, labels that mean something, float32 networks)."""
    from .estimator_checks import run_sklearn_checks

    ctx.new().check_params()  # a detector that cannot fit at all fails here, with its own message
    results = run_sklearn_checks(ctx.new())
    failed = [
        f"{r['check_name']}: {str(r['exception']).splitlines()[0][:200]}" for r in results if r["status"] == "failed"
    ]
    assert not failed, f"{len(failed)} of scikit-learn's checks failed: " + "; ".join(failed)


CHECKS: list[Callable[[_Context], None]] = [
    check_init_stores_params,
    check_get_set_params,
    check_fit_score_shapes,
    check_decision_vocabulary,
    check_labels_convention,
    check_fit_without_labels,
    check_same_seed_same_scores,
    check_save_load_identical,
    check_clone_unfitted,
    check_rejects_bad_input,
    check_search_space,
    check_sklearn_estimator,
]


def _listify(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _resolve(detector: str | type[Detector]) -> type[Detector]:
    if isinstance(detector, str):
        from .registry import get

        detector = get("detectors", detector)
    if not (isinstance(detector, type) and issubclass(detector, Detector)):
        raise SadkitError(f"{detector!r} is not a sadkit Detector subclass")
    return detector


def check_detector(
    detector: str | type[Detector],
    params: dict[str, Any] | None = None,
    input_shape: tuple[int, ...] = (5,),
    *,
    sklearn: bool = True,
) -> list[CheckResult]:
    """Run every conformance check; return one result per check (none raises).

    Args:
        sklearn: include scikit-learn's ``check_estimator`` (a few seconds for a deep detector; sadkit's
            own test suite runs it separately, check by check).
    """
    cls = _resolve(detector)
    merged = {**cls.fast_params, **(params or {})}
    X, y, X_test = make_data(input_shape)
    ctx = _Context(cls=cls, params=merged, X=X, y=y, X_test=X_test)
    results = []
    for check in CHECKS if sklearn else [c for c in CHECKS if c is not check_sklearn_estimator]:
        name = check.__name__.removeprefix("check_")
        try:
            check(ctx)
        except AssertionError as err:
            results.append(CheckResult(name, False, str(err) or "assertion failed"))
        except Exception as err:  # noqa: BLE001 - a crash is a failed check, reported with its cause
            frame = traceback.extract_tb(err.__traceback__)[-1]
            where = f" ({frame.filename}:{frame.lineno})"
            results.append(CheckResult(name, False, f"{type(err).__name__}: {err}{where}"))
        else:
            results.append(CheckResult(name, True))
    return results


def assert_detector_conforms(
    detector: str | type[Detector],
    params: dict[str, Any] | None = None,
    input_shape: tuple[int, ...] = (5,),
    *,
    sklearn: bool = True,
) -> None:
    """Raise ``AssertionError`` naming every failed check."""
    failed = [r for r in check_detector(detector, params, input_shape, sklearn=sklearn) if not r.passed]
    if failed:
        lines = "\n".join(f"  {r.name}: {r.message}" for r in failed)
        raise AssertionError(f"{len(failed)} conformance check(s) failed:\n{lines}")


__all__ = ["CHECKS", "CheckResult", "assert_detector_conforms", "check_detector", "make_data"]
