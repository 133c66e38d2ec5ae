"""Every built-in detector on every kind of data, through the real command line, its model logged and
loaded back by URI: the matrix that would have caught the image run that crashed while logging its model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sadkit import create_dataset, registry

#: quick parameters per detector (tiny epochs; kernel methods on a subsample)
QUICK = {
    "deepsad": ["-p", "n_epochs=1", "-p", "ae_n_epochs=1"],
    "deepsvdd": ["-p", "n_epochs=1", "-p", "ae_n_epochs=1"],
    "esad": ["-p", "n_epochs=1"],
    "semidgm": ["-p", "n_epochs=1", "-p", "vae_n_epochs=1"],
    "supervised": ["-p", "n_epochs=1"],
    "active": ["-p", "base_params={n_epochs: 1}"],
    "ocsvm": ["-p", "max_samples=100"],
    "ssad": ["-p", "max_samples=100"],
    "kde": ["-p", "max_samples=100"],
    "iforest": ["-p", "n_estimators=20"],
}
KINDS = {
    "tabular": ["-d", "n_samples=300"],
    "image": ["-d", "n_samples=300", "-d", "image_shape=[1,28,28]"],
}


def _built_in() -> list[str]:
    return [n for n in registry.names("detectors") if registry.get("detectors", n).__module__.startswith("sadkit.")]


def test_every_built_in_detector_has_quick_parameters():
    assert set(_built_in()) <= set(QUICK)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("detector", sorted(QUICK))
def test_run_logs_a_model_that_scores_raw_rows_again(cli, tracking_uri, detector, kind):
    from sadkit.tracking import load_model

    if detector not in _built_in():
        pytest.skip(f"{detector} is not installed")
    result = cli("run", detector, "synthetic", *QUICK[detector], *KINDS[kind], "--device", "cpu", "--seed", "1",
                 "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    dataset = create_dataset(
        "synthetic", n_samples=300, seed=1, **({"image_shape": [1, 28, 28]} if kind == "image" else {})
    )
    dataset.load()
    raw, _, _ = dataset._read()
    rows = raw[dataset._test_index][:9]  # raw rows: flattened pixels for images
    predicted = load_model(out["model_uri"], tracking_uri=tracking_uri).predict(rows)
    assert predicted.shape == (9, 2) and np.isfinite(predicted["score"]).all()
    assert ((predicted["score"] > out["threshold"]).astype(int) == predicted["label"]).all()
