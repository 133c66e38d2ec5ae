"""The out-of-tree example plugin (examples/sadkit-example-plugin), installed the way a third party is.

CI installs every ``examples/*/`` package; these tests skip, saying why, where it is not installed.
"""

from __future__ import annotations

import importlib.metadata
import json

import pytest

from sadkit import registry
from sadkit.testing import assert_detector_conforms

DISTRIBUTION = "sadkit-example-plugin"

try:
    importlib.metadata.distribution(DISTRIBUTION)
except importlib.metadata.PackageNotFoundError:
    pytestmark = pytest.mark.skip(
        reason=f"{DISTRIBUTION} is not installed: pip install -e examples/sadkit-example-plugin (CI does)"
    )



def test_listed_with_its_distribution(cli):
    result = cli("plugins", "list", "--json", "--group", "detectors")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {"group": "sadkit.detectors", "name": "knn", "distribution": DISTRIBUTION} in rows
    builtin = {row["name"] for row in rows if row["distribution"] == "sadkit"}
    assert {"ocsvm", "iforest", "kde", "ssad", "semidgm", "supervised"} <= builtin


def test_runs_through_sadkit_run(cli, tracking_uri):
    result = cli("run", "knn", "synthetic", "-p", "n_neighbors=7", "--data", "n_samples=400", "--seed", "1", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["detector"] == "knn" and out["params"]["n_neighbors"] == 7
    assert out["test_auroc"] > 0.7 and out["model_uri"]


def test_passes_the_conformance_checks_from_pytest_and_the_cli(cli):
    assert_detector_conforms("knn")
    result = cli("plugins", "check", "knn", "--json")
    assert result.exit_code == 0, result.stdout
    assert all(row["passed"] for row in json.loads(result.stdout))


def test_a_failed_check_is_named_and_exits_1(cli):
    result = cli("plugins", "check", "knn", "-p", "n_neighbors=500")  # more neighbours than samples
    assert result.exit_code == 1
    assert "FAIL fit_score_shapes" in result.stdout and "n_neighbors=500" in result.stdout
    assert registry.get("detectors", "knn").__module__ == "sadkit_example_plugin.knn"
