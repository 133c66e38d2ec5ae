"""The kernel baselines' selection protocols: validation (default), cv, and the leaky paper_test_holdout."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from sadkit import InvalidInputError, create_dataset
from sadkit.data import Split
from sadkit.experiment import ExperimentSpec, run_experiment
from sadkit.leakage import LEAKAGE_TAG, PAPER_TEST_HOLDOUT, paper_test_holdout, requested_leakage
from sadkit.plugins.shallow import selection
from sadkit.plugins.shallow.ocsvm import OCSVM
from sadkit.plugins.shallow.ssad import SSAD


def _train(n: int = 240, n_labeled_anomalies: int = 8, seed: int = 0):
    """Normals in a tight blob plus labeled anomalies spread out (semi_y -1); the rest unlabeled."""
    rng = np.random.default_rng(seed)
    X = np.clip(rng.normal(0.5, 0.08, size=(n, 4)), 0, 1)
    X[:n_labeled_anomalies] = rng.uniform(0, 1, size=(n_labeled_anomalies, 4))
    semi = np.zeros(n, dtype=np.int64)
    semi[:n_labeled_anomalies] = -1
    return X.astype(np.float32), semi


def test_the_paper_holdout_is_the_references_stratified_tenth_and_the_rest_is_disjoint():
    y = np.array([0] * 180 + [1] * 20)
    test = Split(np.arange(200, dtype=np.float32).reshape(-1, 1), y)
    holdout, rest = paper_test_holdout(test, seed=3)
    assert len(holdout) == 20 and int(np.sum(holdout.y)) == 2  # int(20 * 0.9) normals, int(20 * 0.1) anomalies
    assert not set(holdout.ids) & set(rest.ids) and len(holdout) + len(rest) == 200
    again, _ = paper_test_holdout(test, seed=3)
    assert np.array_equal(holdout.ids, again.ids)


def test_only_a_detector_that_names_the_leaky_protocol_asks_for_it():
    assert requested_leakage(OCSVM()) is None
    assert requested_leakage(SSAD(selection="cv")) is None
    assert requested_leakage(OCSVM(selection=PAPER_TEST_HOLDOUT)) == PAPER_TEST_HOLDOUT
    with pytest.raises(InvalidInputError, match="selection must be one of"):
        OCSVM(selection="test").fit(_train()[0])


@pytest.fixture
def selection_spy(monkeypatch):
    """The ``eval_set`` rows every selection scores, through whatever calls it."""
    seen = []
    original = selection.select_on_validation

    def spy(candidates, fit, score, eval_set):
        seen.append(np.asarray(eval_set[0], dtype=np.float64))
        return original(candidates, fit, score, eval_set)

    monkeypatch.setattr(selection, "select_on_validation", spy)
    return seen


SYNTHETIC = {"n_samples": 600, "ratio_known_outlier": 0.05}


def test_by_default_selection_never_sees_the_test_split(tracking_uri, selection_spy):
    """Through a whole experiment: the only labeled data a selection scores is the validation split."""
    spec = ExperimentSpec(detector="ocsvm", dataset="synthetic", data=SYNTHETIC, seed=4, log_model=False, threads=1)
    result = run_experiment(spec)
    _, val, test = create_dataset("synthetic", seed=4, **SYNTHETIC).load()
    assert len(selection_spy) == 1
    assert np.array_equal(selection_spy[0], val.X.astype(np.float64))
    test_rows = {row.tobytes() for row in np.asarray(test.X, dtype=np.float64)}
    assert not any(row.tobytes() in test_rows for row in selection_spy[0])
    params = MlflowClient(tracking_uri).get_run(result.run_id).data.params
    assert params["selected.selection"] == "validation"
    assert float(params["selected.nu"]) == result.selected["nu"]
    assert float(params["selected.gamma"]) == result.selected["gamma"]


def test_paper_test_holdout_selects_on_test_rows_reports_the_rest_and_tags_the_run(tracking_uri, selection_spy):
    spec = ExperimentSpec(
        detector="ocsvm", dataset="synthetic", data=SYNTHETIC, seed=4, log_model=False, threads=1,
        params={"selection": PAPER_TEST_HOLDOUT},
    )  # fmt: skip
    result = run_experiment(spec)
    _, _, test = create_dataset("synthetic", seed=4, **SYNTHETIC).load()
    holdout, rest = paper_test_holdout(test, 4)
    assert len(selection_spy) == 1 and np.array_equal(selection_spy[0], holdout.X.astype(np.float64))
    assert result.n_test == len(rest) and result.leakage == PAPER_TEST_HOLDOUT
    run = MlflowClient(tracking_uri).get_run(result.run_id)
    assert run.data.tags[LEAKAGE_TAG] == PAPER_TEST_HOLDOUT
    assert run.data.params["selected.selection"] == PAPER_TEST_HOLDOUT
    assert run.data.metrics["n_test_holdout"] == len(holdout)


def test_a_default_run_carries_no_leakage_tag(tracking_uri):
    spec = ExperimentSpec(detector="ocsvm", dataset="synthetic", data={"n_samples": 300}, seed=1, log_model=False)
    result = run_experiment(spec)
    assert result.leakage is None
    assert LEAKAGE_TAG not in MlflowClient(tracking_uri).get_run(result.run_id).data.tags


def test_paper_test_holdout_without_a_holdout_is_a_clear_error():
    X, semi = _train()
    with pytest.raises(InvalidInputError, match="paper_test_holdout"):
        OCSVM(selection=PAPER_TEST_HOLDOUT).fit(X, semi_y=semi)


@pytest.mark.parametrize("detector", [OCSVM, SSAD])
def test_cv_chooses_on_the_labeled_training_samples_alone(detector):
    X, semi = _train()
    fitted = detector(selection="cv", seed=0).fit(X, semi_y=semi)  # no eval_set at all: validation could not choose
    assert fitted.selected_params()["selection"] == "cv"
    rows = fitted.selection_
    assert len(rows) == (50 if detector is OCSVM else 10) and rows[0]["cv_folds"] == 5
    best = max(rows, key=lambda r: (r["cv_auroc"], r["cv_auprc"]))
    assert fitted.selected_params()["gamma"] == best["gamma"]


def test_cv_with_fewer_than_two_labeled_anomalies_falls_back_to_validation():
    X, semi = _train(n_labeled_anomalies=1)
    rng = np.random.default_rng(1)
    X_val = np.concatenate([np.clip(rng.normal(0.5, 0.08, (40, 4)), 0, 1), rng.uniform(0, 1, (4, 4))])
    y_val = np.array([0] * 40 + [1] * 4)
    with pytest.warns(UserWarning, match="labeled anomalies"):
        fitted = OCSVM(selection="cv").fit(X, semi_y=semi, eval_set=(X_val.astype(np.float32), y_val))
    assert fitted.selected_params()["selection"] == "validation"
