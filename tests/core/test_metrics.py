"""sadkit's AUROC (ranks, Mann-Whitney) against scikit-learn's roc_auc_score, ties included."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from sadkit.metrics import auroc


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(-3, 3)), min_size=2, max_size=60),
)
def test_auroc_is_scikit_learns(pairs):
    y = np.array([p[0] for p in pairs])
    scores = np.array([p[1] / 2 for p in pairs], dtype=float)  # few distinct values: many ties
    if len(set(y.tolist())) < 2:
        assert math.isnan(auroc(y, scores))
    else:
        assert math.isclose(auroc(y, scores), roc_auc_score(y, scores), rel_tol=1e-12, abs_tol=1e-15)
