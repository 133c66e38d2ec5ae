"""What every baseline shares: its own Optuna space, and `sadkit plugins check` on every built-in detector.

The per-detector behaviour lives in test_shallow, test_ssad, test_semidgm, test_supervised and test_hybrid.
"""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest

from sadkit import auroc, registry
from sadkit.testing import CHECKS

BASELINES = ("ocsvm", "iforest", "kde", "ssad", "semidgm", "supervised")
CHECK_NAMES = [check.__name__.removeprefix("check_") for check in CHECKS]
BUILTIN = sorted(
    info.name for info in registry.list_plugins("detectors") if info.distribution == "sadkit" and not info.error
)



def _data(n: int = 300, d: int = 4, seed: int = 0):
    """Normals in a blob; 15 anomalies spread out, 6 of them labeled; a test set drawn the same way."""
    rng = np.random.default_rng(seed)

    def draw(n_normal: int, n_anomaly: int):
        X = np.concatenate([rng.normal(0.5, 0.07, (n_normal, d)), rng.uniform(0, 1, (n_anomaly, d))])
        return np.clip(X, 0, 1).astype(np.float32), np.r_[np.zeros(n_normal), np.ones(n_anomaly)].astype(int)

    X, y = draw(n - 15, 15)
    semi_y = np.zeros(n, dtype=np.int64)
    semi_y[np.flatnonzero(y == 1)[:6]] = -1
    X_test, y_test = draw(150, 30)
    return X, semi_y, X_test, y_test


# ----------------------------------------------------------------------------------- search spaces
@pytest.mark.parametrize("name", BASELINES)
def test_every_point_of_the_search_space_builds_a_working_detector(name):
    """Sampled by a real Optuna study: the detector takes the values, fits and scores.

    The shallow ones must also rank the anomalies; the deep ones train for 3 epochs only here.
    """
    cls = registry.get("detectors", name)
    X, semi_y, X_test, y_test = _data()
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):
        trial = study.ask()
        space = cls.search_space(trial)
        assert space and set(space) <= set(cls._get_param_names()), space
        assert set(space) == set(trial.params)  # every value is a suggestion the study records
        detector = cls(**{**cls.fast_params, **space}).fit(X, semi_y=semi_y)
        assert {k: detector.get_params()[k] for k in space} == space
        scores = detector.decision_function(X_test)
        assert scores.shape == (len(X_test),) and np.isfinite(scores).all()
        study.tell(trial, auroc(y_test, scores))
    if name not in ("semidgm", "supervised"):
        assert max(t.value for t in study.trials) > 0.7, [(t.params, t.value) for t in study.trials]


def test_ssad_space_stays_feasible_at_its_corners():
    """kappa at its top with eta_l and eta_u at their bottoms, on 2 labeled and 100 unlabeled samples."""
    cls = registry.get("detectors", "ssad")
    X, semi_y, X_test, _ = _data(n=102)
    semi_y[:] = 0
    semi_y[np.argsort(X[:, 0])[-2:]] = -1
    trial = optuna.trial.FixedTrial({"gamma": 2.0**-7, "kappa": 1.0, "eta_u": 0.02, "eta_l": 1.0})
    detector = cls(**cls.search_space(trial)).fit(X, semi_y=semi_y)
    assert detector.alpha_sum_labeled_ >= 1.0 - 1e-6
    assert np.isfinite(detector.decision_function(X_test)).all()


# --------------------------------------------------------------------------------- plugins check
def test_the_builtin_detectors_are_registered_by_entry_point():
    assert set(BASELINES) <= set(BUILTIN)
    for name in BASELINES:
        assert registry.get("detectors", name).__module__.startswith("sadkit.plugins.")


@pytest.mark.parametrize("name", BUILTIN)
def test_plugins_check_passes_every_check_for_every_builtin_detector(cli, name):
    result = cli("plugins", "check", name, "--json")
    assert result.exit_code == 0, result.stdout
    rows = json.loads(result.stdout)
    assert [row["check"] for row in rows] == CHECK_NAMES
    assert all(row["passed"] and not row["message"] for row in rows), rows


def test_plugins_check_names_each_failed_check_and_exits_1(cli):
    result = cli("plugins", "check", "ssad", "-p", "kappa=-1")
    assert result.exit_code == 1
    lines = result.stdout.replace("\n(", " (").splitlines()
    failed = [line for line in lines if line.startswith("FAIL ")]
    assert failed and all("kappa=-1" in line for line in failed), result.stdout
    assert {line.split()[1].rstrip(":") for line in failed} < set(CHECK_NAMES)
    assert "PASS init_stores_params" in result.stdout
    assert result.stdout.rstrip().endswith(f"{len(CHECK_NAMES) - len(failed)} passed, {len(failed)} failed")

    rows = json.loads(cli("plugins", "check", "ssad", "-p", "kappa=-1", "--json").stdout)
    assert {r["check"] for r in rows if not r["passed"]} == {line.split()[1].rstrip(":") for line in failed}


def test_plugins_check_of_an_unknown_name_lists_the_installed_ones(cli):
    result = cli("plugins", "check", "ocsvmm")
    assert result.exit_code == 1
    assert "no plugin named 'ocsvmm'; installed: detectors: " in result.stderr and "ocsvm" in result.stderr
    assert "Traceback" not in result.stderr


def test_plugins_check_of_an_unknown_parameter_is_one_clear_line(cli):
    result = cli("plugins", "check", "kde", "-p", "bandwith=0.1")
    assert result.exit_code != 0
    assert "bandwith" in result.stdout + result.stderr and "Traceback" not in result.stderr


# ------------------------------------------------------------------------------- without labels
def test_semidgm_runs_through_sadkit_run_without_any_label(cli, tracking_uri):
    """Item 4: SemiDGM must work with no labeled sample (the reference divides by zero)."""
    with pytest.warns(UserWarning, match="without labeled samples"):  # which class is 'anomaly' is arbitrary
        result = cli(
            "run", "semidgm", "synthetic", "--data", "ratio_known_outlier=0", "--data", "n_samples=400",
            "-p", "n_epochs=2", "--seed", "1", "--no-model", "--json",
        )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert 0.0 <= out["test_auroc"] <= 1.0 and out["n_train"] > 0
