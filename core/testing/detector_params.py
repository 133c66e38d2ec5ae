"""Conformance checks of a detector's parameters: ``__init__`` only stores them, ``set_params`` reaches
``fit``, the search space builds detectors, and scikit-learn's own ``check_estimator`` passes.

A study builds a detector once and moves it through its space with ``set_params``; scikit-learn's
``clone``, ``GridSearchCV`` and pipelines do the same. A detector that builds its model in ``__init__``
(PyOD's habit, which STYLE.md says to avoid) tunes nothing that way, without any error.
"""

from __future__ import annotations

import inspect
import sys
import time
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .detectors import DetectorContext

#: ``__init__`` slower than this (the fastest of three) does work it should leave to ``fit``
INIT_SECONDS = 0.05
#: parameters never nudged by :func:`check_set_params_reaches_fit` (they do not change the scores, or
#: change where the work runs)
NOT_NUDGED = ("contamination", "threshold", "device", "n_jobs", "verbose", "seed")


def space_points(ctx: DetectorContext, n: int = 2) -> list[tuple[dict[str, Any], set[str]]]:
    """``n`` points of the detector's own search space (drawn once per context; none without a space)."""
    if "space" not in ctx.cache:
        from ..tuning import sample_search_space

        ctx.cache["space"] = sample_search_space(ctx.cls, n)
    return ctx.cache["space"]


def check_init_stores_params(ctx: DetectorContext) -> None:
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


def check_init_does_no_work(ctx: DetectorContext) -> None:
    """``__init__`` does no work: it is quick, sets no attribute but its parameters and leaves the global
    random generators alone (models, data and seeds belong in ``_fit``)."""
    numpy_state = np.random.get_state()[1].copy()
    torch = sys.modules.get("torch")
    torch_state = torch.random.get_rng_state().clone() if torch is not None else None
    times = []
    for _ in range(3):
        start = time.perf_counter()
        detector = ctx.new()
        times.append(time.perf_counter() - start)
    assert min(times) < INIT_SECONDS, (
        f"__init__ took {min(times):.2f} s (the fastest of 3): it must only store its arguments; build models,"
        " read data and seed generators in _fit"
    )
    params = set(ctx.cls._get_param_names())
    extra = sorted(k for k in vars(detector) if k not in params)
    assert not extra, (
        f"__init__ set {', '.join(extra)}, which {'is not a parameter' if len(extra) == 1 else 'are not parameters'}:"
        " build it in _fit from the parameters (set_params cannot reach what __init__ built, so a study would"
        " tune nothing)"
    )
    assert np.array_equal(np.random.get_state()[1], numpy_state), (
        "__init__ seeded or drew from numpy's global generator"
    )
    if torch_state is not None:
        assert torch.equal(torch.random.get_rng_state(), torch_state), "__init__ seeded or drew from torch's generator"


def check_get_set_params(ctx: DetectorContext) -> None:
    """``get_params``/``set_params`` round-trip, so a study can rebuild the detector from a dict."""
    detector = ctx.new()
    params = detector.get_params()
    rebuilt = ctx.cls(**params)
    assert rebuilt.get_params() == params, "rebuilding from get_params() gives other parameters"
    assert detector.set_params(**params) is detector, "set_params must return self"


def check_set_params_reaches_fit(ctx: DetectorContext) -> None:
    """``set_params`` changes what ``fit`` does: a detector moved to other values with ``set_params`` and then
    fitted scores as one built with those values (as a study, ``clone`` and ``GridSearchCV`` use it).

    The values: the checks' parameters (``fast_params`` and the given ones) set on a detector built with its
    defaults, a point of the detector's own search space, and without a space, its numeric and boolean
    parameters nudged one by one. A value the detector refuses on the checks' data is skipped.
    """
    base = ctx.scores(ctx.new())
    defaults = ctx.cls().get_params()
    changed = {k: v for k, v in ctx.params.items() if not _same(defaults.get(k, object()), v)}
    if changed:
        _compare(ctx, ctx.cls().set_params(**ctx.params), base, changed, "built with its defaults")
    for point in _points(ctx):
        try:
            direct = ctx.scores(ctx.new(**point))
        except Exception:  # noqa: BLE001 - a value refused here is reported by the check of the space, if at all
            continue
        _compare(ctx, ctx.new().set_params(**point), direct, point, "built with the checks' parameters")


def _points(ctx: DetectorContext) -> list[dict[str, Any]]:
    points = [values for values, _ in space_points(ctx)[:1] if values]
    if points:
        return points
    nudged = []
    for name, value in ctx.new().get_params(deep=False).items():
        if name in NOT_NUDGED or name in ctx.params and ctx.params[name] is None:
            continue
        if isinstance(value, bool):
            nudged.append({name: not value})
        elif isinstance(value, int):
            nudged.append({name: value + 1})
        elif isinstance(value, float):
            nudged.append({name: value * 2 if value else 0.1})
    return nudged[:3]


def _compare(ctx: DetectorContext, moved: Any, expected: np.ndarray, values: dict[str, Any], start: str) -> None:
    got = ctx.scores(moved)
    if np.allclose(got, expected, rtol=1e-5, atol=1e-7):
        return
    shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
    raise AssertionError(
        f"set_params({shown}) on a detector {start}, then fit, gives other scores than {ctx.cls.__name__}({shown})"
        f" (by up to {np.abs(got - expected).max():.3g}): fit does not use what set_params set; read the"
        " parameters in _fit and build estimators and networks there, not in __init__ (if same_seed_same_scores"
        " fails too, fix that first)"
    )


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return a is b


def check_search_space(ctx: DetectorContext) -> None:
    """Points of the detector's own Optuna space (``search_space``) build detectors that fit and score.

    Every returned key is a constructor parameter, suggested on the trial under the same name (a study
    logs and resumes by those names), and the fitted detector holds the value. No space: nothing to check.
    """
    names = set(ctx.cls._get_param_names())
    for values, suggested in space_points(ctx):
        unknown = sorted(set(values) - names)
        assert not unknown, f"search_space returned {unknown}, which are not parameters of {ctx.cls.__name__}"
        renamed = sorted(set(values) - suggested)
        assert not renamed, f"search_space returned {renamed} without suggesting them under those names"
        detector = ctx.cls(**{**ctx.params, **values}).fit(ctx.X, ctx.y)
        held = {k: detector.get_params()[k] for k in values}
        assert held == values, f"search_space point {values} became {held}"
        scores = detector.decision_function(ctx.X_test)
        assert np.isfinite(scores).all(), f"scores at search_space point {values} contain NaN or infinity"


def check_sklearn_estimator(ctx: DetectorContext) -> None:
    """scikit-learn's own ``check_estimator`` passes, but for the checks declared in
    :mod:`sadkit.estimator_checks` (PyOD's 0/1 vocabulary, labels that mean something, float32 networks)."""
    from ..estimator_checks import run_sklearn_checks

    ctx.new().check_params()  # a detector that cannot fit at all fails here, with its own message
    results = run_sklearn_checks(ctx.new())
    failed = [
        f"{r['check_name']}: {str(r['exception']).splitlines()[0][:200]}" for r in results if r["status"] == "failed"
    ]
    assert not failed, f"{len(failed)} of scikit-learn's checks failed: " + "; ".join(failed)
