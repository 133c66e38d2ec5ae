"""The out-of-tree example plugins (examples/sadkit-example-{plugin,network,dataset}), installed the way a third
party installs them, listed, run and checked with ``sadkit plugins check``.

CI installs every ``examples/*/`` package; these tests skip, saying why, where one is not installed.
"""

from __future__ import annotations

import importlib.metadata
import json

import pytest

from sadkit import registry
from sadkit.testing import assert_detector_conforms

DISTRIBUTION = "sadkit-example-plugin"

#: each example distribution and the plugins it registers
EXAMPLES = {
    "sadkit-example-plugin": ("detectors", "knn"),
    "sadkit-example-network": ("networks", "tiny_mlp"),
    "sadkit-example-dataset": ("datasets", "sensors"),
}


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.parametrize("distribution", EXAMPLES)
def test_each_example_is_listed_and_passes_plugins_check(cli, distribution):
    if not _installed(distribution):
        pytest.skip(f"{distribution} is not installed: pip install -e examples/{distribution} (CI does)")
    group, name = EXAMPLES[distribution]
    listed = json.loads(cli("plugins", "list", "--json", "--group", group).stdout)
    assert {"group": f"sadkit.{group}", "name": name, "distribution": distribution} in listed
    result = cli("plugins", "check", name, "--json")
    assert result.exit_code == 0, result.stdout
    assert all(row["passed"] for row in json.loads(result.stdout))


def test_the_example_network_and_dataset_run_together(cli, tracking_uri):
    if not (_installed("sadkit-example-network") and _installed("sadkit-example-dataset")):
        pytest.skip("pip install -e examples/sadkit-example-network examples/sadkit-example-dataset (CI does)")
    fast = ["-p", "n_epochs=3", "-p", "ae_n_epochs=2", "-p", "lr_milestones=[2]", "-p", "ae_lr_milestones=[1]"]
    result = cli("run", "deepsad", "sensors", "-p", "net_name=tiny_mlp", *fast, "--data", "ratio_known_outlier=0.02")
    assert result.exit_code == 0, result.stderr


needs_knn = pytest.mark.skipif(
    not _installed(DISTRIBUTION),
    reason=f"{DISTRIBUTION} is not installed: pip install -e examples/sadkit-example-plugin (CI does)",
)


@needs_knn
def test_listed_with_its_distribution(cli):
    result = cli("plugins", "list", "--json", "--group", "detectors")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {"group": "sadkit.detectors", "name": "knn", "distribution": DISTRIBUTION} in rows
    builtin = {row["name"] for row in rows if row["distribution"] == "sadkit"}
    assert {"ocsvm", "iforest", "kde", "ssad", "semidgm", "supervised"} <= builtin


@needs_knn
def test_runs_through_sadkit_run(cli, tracking_uri):
    result = cli("run", "knn", "synthetic", "-p", "n_neighbors=7", "--data", "n_samples=400", "--seed", "1", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["detector"] == "knn" and out["params"]["n_neighbors"] == 7
    assert out["test_auroc"] > 0.7 and out["model_uri"]


@needs_knn
def test_passes_the_conformance_checks_from_pytest_and_the_cli(cli):
    assert_detector_conforms("knn")
    result = cli("plugins", "check", "knn", "--json")
    assert result.exit_code == 0, result.stdout
    assert all(row["passed"] for row in json.loads(result.stdout))


@needs_knn
def test_a_failed_check_is_named_and_exits_1(cli):
    result = cli("plugins", "check", "knn", "-p", "n_neighbors=500")  # more neighbours than samples
    assert result.exit_code == 1
    assert "FAIL fit_score_shapes" in result.stdout and "n_neighbors=500" in result.stdout
    assert registry.get("detectors", "knn").__module__ == "sadkit_example_plugin.knn"
