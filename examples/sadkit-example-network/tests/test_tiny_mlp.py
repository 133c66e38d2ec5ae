"""The example network's own tests: sadkit's conformance checks, then Deep SAD trained on it."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sadkit_example_network", reason="pip install -e examples/sadkit-example-network (CI does)")

from sadkit_example_network import TinyMLP, tiny_mlp  # noqa: E402

from sadkit import create_detector, create_network, registry  # noqa: E402
from sadkit.testing import assert_network_conforms, make_data  # noqa: E402


def test_registered_under_its_entry_point():
    assert registry.get("networks", "tiny_mlp") is tiny_mlp
    assert isinstance(create_network("tiny_mlp", (7,), rep_dim=3), TinyMLP)


def test_passes_sadkit_conformance_checks():
    assert_network_conforms("tiny_mlp")
    assert_network_conforms(tiny_mlp, {"hidden": 8, "rep_dim": 2}, input_shape=(3, 4))


def test_deep_sad_pretrains_and_trains_it():
    X, y, X_test = make_data((6,))
    detector = create_detector(
        "deepsad", net_name="tiny_mlp", n_epochs=2, ae_n_epochs=2, lr_milestones=[1], ae_lr_milestones=[1], device="cpu"
    ).fit(X, y)
    scores = detector.decision_function(X_test)
    assert scores.shape == (len(X_test),) and np.isfinite(scores).all()
    assert detector.net_.rep_dim == 4 and detector.pretrained_autoencoder() is not None
