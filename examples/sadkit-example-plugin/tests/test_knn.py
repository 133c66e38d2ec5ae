"""The example plugin's own tests: sadkit's conformance checks, then what is special about k-NN."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sadkit_example_plugin", reason="pip install -e examples/sadkit-example-plugin (CI does)")

from sadkit_example_plugin import KNN  # noqa: E402
from sklearn.neighbors import NearestNeighbors  # noqa: E402

from sadkit import InvalidInputError, create_detector, registry  # noqa: E402
from sadkit.testing import assert_detector_conforms, make_data  # noqa: E402


def test_registered_under_its_entry_point():
    assert registry.get("detectors", "knn") is KNN


def test_passes_sadkit_conformance_checks():
    assert_detector_conforms("knn")
    assert_detector_conforms(KNN, {"aggregate": "kth", "exclude_labeled_anomalies": False})


@pytest.mark.parametrize("aggregate", ["mean", "kth"])
def test_scores_are_neighbour_distances(aggregate):
    X, _, X_test = make_data((4,), n_train=80)
    scores = create_detector("knn", n_neighbors=4, aggregate=aggregate).fit(X).decision_function(X_test)
    distances, _ = NearestNeighbors(n_neighbors=4).fit(X).kneighbors(X_test)
    expected = distances[:, -1] if aggregate == "kth" else distances.mean(axis=1)
    assert np.allclose(scores, expected, atol=1e-5)


def test_labeled_anomalies_are_not_references():
    X, y, _ = make_data((4,), n_train=80)  # the first samples are labeled anomalies (y = 1)
    detector = KNN(n_neighbors=1).fit(X, y)
    assert len(detector.reference_) == int((y != 1).sum())
    assert detector.decision_function(X[:1])[0] > 0  # a labeled anomaly is not its own neighbour
    with_anomalies = KNN(n_neighbors=1, exclude_labeled_anomalies=False).fit(X, y)
    assert with_anomalies.decision_function(X[:1])[0] == pytest.approx(0, abs=1e-3)


def test_too_few_references_is_a_clear_error():
    X, _, _ = make_data((4,), n_train=10)
    with pytest.raises(InvalidInputError, match="n_neighbors=20"):
        KNN(n_neighbors=20).fit(X)
