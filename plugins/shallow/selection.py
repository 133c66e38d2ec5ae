"""How the kernel baselines (OC-SVM, SSAD) choose their hyperparameters: three protocols, one named leaky.

``selection`` names the protocol:

* ``validation`` (the default): AUROC on the validation split that the experiment runner carves from
  the training pool. Leakage-free, but at the paper's gamma_l = 0.01 that split holds 0-3 anomalies,
  so most candidates tie and the choice is close to arbitrary.
* ``cv``: cross-validation over the labeled training samples, for practitioners whose validation split
  holds too few anomalies. The training samples are split into ``k = min(5, labeled anomalies)``
  folds stratified by "labeled anomaly or not"; every candidate is fitted on k - 1 folds (with their
  labels) and scored on the held-out fold, where the labeled anomalies are the positives and every
  other sample (labeled normal or unlabeled) counts as normal; the mean AUROC over the folds decides
  (ties: mean AUPRC, then grid order), and the chosen candidate is refitted on all training samples.
  Nothing but the training split and its own labels is used. Unlabeled anomalies among the "normals"
  (gamma_p > 0) only make the criterion noisier. Fewer than 2 labeled anomalies: ``validation``.
* ``paper_test_holdout``: the Deep SAD reference code's protocol, **leaky by design**, for reproducing
  the paper's numbers only. The reference selects on 10% of the *test* set; here the experiment
  runner, seeing this value, hands the detector a stratified 10% of the test split as ``eval_set``,
  reports the test metrics on the other 90%, and tags the run ``sadkit.leakage=paper_test_holdout``
  (:mod:`sadkit.leakage`). Never the default.

Ties in every protocol go to the higher AUPRC, then to the first candidate in grid order.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sadkit import InvalidInputError, auprc, auroc
from sadkit.leakage import PAPER_TEST_HOLDOUT

SELECTIONS = ("validation", "cv", PAPER_TEST_HOLDOUT)
#: folds of ``selection="cv"`` (fewer when there are fewer labeled anomalies)
CV_FOLDS = 5

#: ``fit(candidate, rows)``: the model of ``candidate`` fitted on the training rows ``rows`` (None: all)
FitFn = Callable[[dict[str, Any], "np.ndarray | None"], Any]
ScoreFn = Callable[[Any, np.ndarray], np.ndarray]


def check_selection(owner: str, value: Any) -> None:
    if value not in SELECTIONS:
        raise InvalidInputError(f"{owner}: selection must be one of {', '.join(SELECTIONS)}, got {value!r}")


def usable_eval_set(eval_set: tuple[np.ndarray, np.ndarray] | None) -> bool:
    """Whether ``eval_set`` has both normals and anomalies, so that its AUROC can select a model."""
    if eval_set is None or len(eval_set[0]) == 0:
        return False
    return np.unique(np.asarray(eval_set[1])).size == 2


def _key(y: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    return tuple(-math.inf if math.isnan(v) else v for v in (auroc(y, scores), auprc(y, scores)))  # type: ignore[return-value]


def select_on_validation(
    candidates: Sequence[dict[str, Any]],
    fit: Callable[[dict[str, Any]], Any],
    score: ScoreFn,
    eval_set: tuple[np.ndarray, np.ndarray],
) -> tuple[dict[str, Any], Any, list[dict[str, Any]]]:
    """Fit every candidate, keep the best by AUROC on ``eval_set`` (ties: AUPRC, then the first in order).

    ``eval_set`` is the validation split, or with ``selection="paper_test_holdout"`` the test holdout
    the experiment runner hands over for that protocol alone.

    Returns:
        The best candidate, its fitted model and one row per candidate (its values, AUROC, AUPRC).
    """
    X_val, y_val = eval_set
    best: tuple[float, float] | None = None
    chosen: tuple[dict[str, Any], Any] | None = None
    table = []
    for candidate in candidates:
        model = fit(candidate)
        key = _key(y_val, score(model, X_val))
        table.append({**candidate, "val_auroc": key[0], "val_auprc": key[1]})
        if best is None or key > best:
            best, chosen = key, (candidate, model)
    assert chosen is not None
    return chosen[0], chosen[1], table


def select_by_cv(
    candidates: Sequence[dict[str, Any]],
    fit: FitFn,
    score: ScoreFn,
    Z: np.ndarray,
    semi_y: np.ndarray,
    seed: int,
    n_folds: int = CV_FOLDS,
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The best candidate by cross-validated AUROC of the labeled anomalies (see the module docstring).

    Returns:
        The best candidate and one row per candidate (mean AUROC and AUPRC over the folds), or None
        when the training split holds fewer than 2 labeled anomalies.
    """
    from sklearn.model_selection import StratifiedKFold

    positive = (np.asarray(semi_y) == -1).astype(np.int64)
    k = min(int(n_folds), int(positive.sum()))
    if k < 2:
        return None
    folds = list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed % 2**32).split(Z, positive))
    best: tuple[float, float] | None = None
    chosen: dict[str, Any] | None = None
    table = []
    for candidate in candidates:
        keys = [_key(positive[held], score(fit(candidate, kept), Z[held])) for kept, held in folds]
        key = (float(np.mean([k[0] for k in keys])), float(np.mean([k[1] for k in keys])))
        table.append({**candidate, "cv_auroc": key[0], "cv_auprc": key[1], "cv_folds": k})
        if best is None or key > best:
            best, chosen = key, candidate
    assert chosen is not None
    return chosen, table


def select_model(
    selection: str,
    candidates: Sequence[dict[str, Any]],
    fit: FitFn,
    score: ScoreFn,
    *,
    eval_set: tuple[np.ndarray, np.ndarray] | None,
    Z: np.ndarray,
    semi_y: np.ndarray,
    seed: int,
    owner: str,
) -> tuple[dict[str, Any], Any, list[dict[str, Any]], str] | None:
    """Choose among ``candidates`` by ``selection``; None when nothing can choose (the caller's defaults).

    Returns:
        ``(candidate, fitted model, one row per candidate, how it was chosen)``.

    Raises:
        InvalidInputError: ``paper_test_holdout`` without a holdout holding normals and anomalies.
    """
    if len(candidates) <= 1:
        return None
    if selection == "cv":
        found = select_by_cv(candidates, fit, score, Z, semi_y, seed)
        if found is not None:
            return found[0], fit(found[0], None), found[1], "cv"
        warnings.warn(
            f"{owner}: selection='cv' needs at least 2 labeled anomalies in the training split; choosing on"
            " the validation split instead",
            UserWarning,
            stacklevel=3,
        )
    if selection == PAPER_TEST_HOLDOUT and not usable_eval_set(eval_set):
        raise InvalidInputError(
            f"{owner}: selection='{PAPER_TEST_HOLDOUT}' selects on a holdout of the test split that only the"
            " experiment runner hands over (sadkit run / sadkit reproduce), holding normals and anomalies;"
            " fit(..., eval_set=(X_holdout, y_holdout)) gives one by hand"
        )
    if not usable_eval_set(eval_set):
        return None
    assert eval_set is not None
    chosen, model, table = select_on_validation(candidates, lambda c: fit(c, None), score, eval_set)
    return chosen, model, table, PAPER_TEST_HOLDOUT if selection == PAPER_TEST_HOLDOUT else "validation"
