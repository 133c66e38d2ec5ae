"""scikit-learn's own estimator checks over a sadkit detector, with the few that cannot apply declared.

Every detector runs ``sklearn.utils.estimator_checks.check_estimator``: the built-ins in the test suite
(``parametrize_with_checks``), any plugin through ``sadkit plugins check`` and
:func:`sadkit.testing.check_detector`. A check that contradicts a deliberate choice of sadkit is declared
an expected failure with its reason, here, once:

* PyOD's vocabulary, not scikit-learn's outlier one: ``predict`` gives 0/1 (1 = anomaly) and
  ``decision_function`` is higher for anomalies, where scikit-learn's outlier detectors give -1/+1 and a
  decision function that is negative for outliers (DESIGN.md, "the detector contract").
* Labels mean something: ``y`` is 1 = anomaly, 0 = normal, -1 = unlabeled. Three checks fit with the class
  labels 1 and 2, which sadkit refuses rather than guess which one is the anomaly.
* A detector that requires labels (``requires_labels``) cannot fit the checks' unlabeled data.
"""

from __future__ import annotations

from typing import Any

#: check name -> why it cannot pass, for every detector
ALWAYS = {
    "check_outliers_train": (
        "predict gives PyOD's 0/1 (1 = anomaly) and decision_function is higher for anomalies; scikit-learn's"
        " outlier detectors give -1/+1 and a decision function negative for outliers"
    ),
    "check_outliers_fit_predict": "fit_predict gives PyOD's 0/1 labels (1 = anomaly), not scikit-learn's -1/+1",
    "check_estimators_dtypes": "fits with class labels 1 and 2; y means 1 = anomaly, 0 = normal, -1 = unlabeled",
    "check_classifier_data_not_an_array": (
        "fits with class labels 1 and 2; y means 1 = anomaly, 0 = normal, -1 = unlabeled"
    ),
    "check_fit2d_1feature": "fits with class labels 1 and 2; y means 1 = anomaly, 0 = normal, -1 = unlabeled",
}
#: for detectors with ``requires_labels = True``
REQUIRES_LABELS = {
    "check_fit_score_takes_y": "needs labeled anomalies, and the check fits without any",
}


def expected_failed_checks(detector: Any) -> dict[str, str]:
    """The checks ``detector`` is expected to fail, with the reason of each."""
    expected = dict(ALWAYS)
    if detector.requires_labels:
        expected.update(REQUIRES_LABELS)
    return expected


def run_sklearn_checks(detector: Any) -> list[dict[str, Any]]:
    """Run scikit-learn's ``check_estimator`` on ``detector``; one record per check with its ``status``
    (``passed``, ``failed``, ``skipped`` or ``xfail``), its name and any exception."""
    import warnings

    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return check_estimator(detector, expected_failed_checks=expected_failed_checks(detector), on_fail=None)
