"""Broken plugins, diagnosed where they break: each breakage of issue 19 made on purpose in a package installed
for one test only (``fake_distribution``), with the message the user sees."""

from __future__ import annotations

import json

import pytest

from sadkit import registry
from sadkit.errors import DuplicatePluginError, PluginLoadError

DETECTORS = "sadkit.detectors"

#: a module that fails on import with an error that is not a missing module
KEY_ERROR_MODULE = """\
CONFIG = {"a": 1}
THRESHOLD = CONFIG["b"]
"""

#: fast Deep SAD settings for runs through the CLI
FAST = ["-p", "n_epochs=2", "-p", "ae_n_epochs=1", "-p", "lr_milestones=[1]", "-p", "ae_lr_milestones=[1]"]


def _rows(result) -> list[dict]:
    return json.loads(result.stdout)


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps table cells to the terminal's width


def test_two_distributions_claiming_one_name_are_a_conflict_on_both_rows(cli, fake_distribution, tracking_uri):
    fake_distribution("sadkit-lof-a", {DETECTORS: {"lof": "lof_a:LOF"}})
    fake_distribution("sadkit-lof-b", {DETECTORS: {"lof": "lof_b:LOF"}})
    listed = cli("plugins", "list", "--json", "--group", "detectors")
    assert listed.exit_code == 1
    lof = {r["distribution"]: r for r in _rows(listed) if r["name"] == "lof"}
    assert lof["sadkit-lof-a"]["conflict"] == "also claimed by sadkit-lof-b"
    assert lof["sadkit-lof-b"]["conflict"] == "also claimed by sadkit-lof-a"
    assert all("conflict" not in r for r in _rows(listed) if r["name"] != "lof")
    table = cli("plugins", "list", "--group", "detectors")
    assert table.exit_code == 1 and table.stdout.count("conflict: also claimed by sadkit-lof-") == 2
    run = cli("run", "lof", "synthetic")
    assert run.exit_code == 1
    assert (
        "error: sadkit.detectors name 'lof' is claimed twice: by sadkit-lof-a (lof_a:LOF) and sadkit-lof-b (lof_b:LOF);"
        " uninstall one" in " ".join(run.stderr.split())
    )


def test_a_third_party_claiming_a_builtin_name_is_a_conflict(cli, fake_distribution, tracking_uri):
    fake_distribution("sadkit-iforest-fork", {DETECTORS: {"iforest": "iforest_fork:IsolationForest"}})
    rows = [r for r in _rows(cli("plugins", "list", "--json")) if r["name"] == "iforest"]
    assert {r["distribution"] for r in rows} == {"sadkit", "sadkit-iforest-fork"}
    by = {r["distribution"]: r["conflict"] for r in rows}
    assert by["sadkit"].startswith("also claimed by sadkit-iforest-fork; a plugin may not take a built-in name")
    assert by["sadkit-iforest-fork"].startswith("also claimed by sadkit (built-in)")
    with pytest.raises(
        DuplicatePluginError, match="'iforest' is built in: rename the entry point in sadkit-iforest-fork"
    ):
        registry.get("detectors", "iforest")
    run = cli("run", "iforest", "synthetic")
    assert run.exit_code == 1 and "is claimed twice" in run.stderr
    assert registry.get("detectors", "kde").__name__ == "KDE"  # the rest still works


def test_an_import_error_shows_the_file_and_line_and_the_traceback_with_debug(cli, fake_distribution, tracking_uri):
    fake_distribution(
        "sadkit-brokenkey", {DETECTORS: {"brokenkey": "brokenkey:Detector"}}, {"brokenkey.py": KEY_ERROR_MODULE}
    )
    listed = cli("plugins", "list", "--json")  # metadata only: not imported, not an error
    assert listed.exit_code == 0 and all("error" not in r for r in _rows(listed))
    checked = cli("plugins", "list", "--check", "--json")
    assert checked.exit_code == 1
    (row,) = [r for r in _rows(checked) if r["name"] == "brokenkey"]
    assert row["error"].startswith("KeyError: 'b' (at ") and row["error"].endswith("brokenkey.py:2)")
    assert "traceback" not in row
    table = cli("plugins", "list", "--check")
    assert "failed: KeyError: 'b' (at" in table.stdout and "brokenkey.py:2)" in table.stdout.replace("\n", "")
    debug = cli("--debug", "plugins", "list", "--check")
    assert "Traceback (most recent call last)" in debug.stderr and 'brokenkey.py", line 2' in debug.stderr
    debug_json = cli("--debug", "plugins", "list", "--check", "--json")
    (row,) = [r for r in _rows(debug_json) if r["name"] == "brokenkey"]
    assert 'CONFIG["b"]' in row["traceback"]
    with pytest.raises(
        PluginLoadError, match=r"sadkit-brokenkey failed to load: KeyError: 'b' \(at .*brokenkey.py:2\)"
    ):
        registry.get("detectors", "brokenkey")
    with pytest.raises(PluginLoadError) as raised:
        registry.get("detectors", "brokenkey")
    assert isinstance(raised.value.__cause__, KeyError)  # --debug shows the plugin's own traceback


def test_a_broken_plugin_is_not_a_warning_on_unrelated_runs(cli, fake_distribution, tracking_uri):
    fake_distribution(
        "sadkit-brokenkey", {DETECTORS: {"brokenkey": "brokenkey:Detector"}}, {"brokenkey.py": KEY_ERROR_MODULE}
    )
    result = cli("run", "iforest", "synthetic", "--data", "n_samples=300", "--json")
    assert result.exit_code == 0, result.stderr
    assert "brokenkey" not in result.stderr and "warning" not in result.stderr.lower()
    assert "brokenkey" not in json.dumps(json.loads(result.stdout))


def test_check_json_is_json_when_the_plugin_does_not_load(cli, fake_distribution):
    fake_distribution(
        "sadkit-brokenkey", {DETECTORS: {"brokenkey": "brokenkey:Detector"}}, {"brokenkey.py": KEY_ERROR_MODULE}
    )
    result = cli("plugins", "check", "brokenkey", "--json")
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["type"] == "PluginLoadError" and "KeyError: 'b' (at " in out["error"]
    for args in (["plugins", "check", "nosuch", "--json"], ["plugins", "list", "--group", "widgets", "--json"]):
        result = cli(*args)
        assert result.exit_code == 1 and "error" in json.loads(result.stdout), args


def test_check_finds_the_group_and_asks_when_a_name_is_in_two(cli, fake_distribution):
    fake_distribution("sadkit-twice", {"sadkit.networks": {"odds": "sadkit.plugins.networks.mlp:mlp"}})
    result = cli("plugins", "check", "odds")
    assert result.exit_code == 1
    assert "'odds' names a plugin in networks and datasets; choose one with --group networks|datasets" in " ".join(
        result.stderr.split()
    )
    network = cli("plugins", "check", "odds", "--group", "networks", "--json")
    assert network.exit_code == 0, network.stdout
    assert [r["check"] for r in _rows(network)][:2] == ["builds", "forward_shapes"]
    unknown = cli("plugins", "check", "no_such_net")
    assert unknown.exit_code == 1 and "no plugin named 'no_such_net'; installed: detectors:" in unknown.stderr


#: a network whose autoencoder's encoder is not the network (another hidden size)
MISMATCHED_NETWORK = """\
from torch import nn
from sadkit import AutoEncoder, Network

class Tiny(Network):
    def __init__(self, input_shape, rep_dim, hidden):
        super().__init__(input_shape, rep_dim)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], hidden, bias=False), nn.LeakyReLU(),
                                 nn.Linear(hidden, rep_dim, bias=False))

    def forward(self, x):
        return self.net(x)

def tiny(input_shape, *, rep_dim=4, autoencoder=False):
    if not autoencoder:
        return Tiny(input_shape, rep_dim, hidden=16)
    decoder = nn.Sequential(nn.Linear(rep_dim, input_shape[0], bias=False), nn.Sigmoid())
    return AutoEncoder(Tiny(input_shape, rep_dim, hidden=32), decoder)
"""


def test_an_autoencoder_whose_encoder_differs_fails_the_check_and_the_fit_in_one_line(
    cli, fake_distribution, tracking_uri
):
    fake_distribution(
        "sadkit-tiny", {"sadkit.networks": {"tiny_bad": "tinybad:tiny"}}, {"tinybad.py": MISMATCHED_NETWORK}
    )
    check = cli("plugins", "check", "tiny_bad")
    assert check.exit_code == 1
    assert (
        "FAIL autoencoder_encoder_is_network: network 'tiny_bad': the autoencoder's encoder must be the network itself"
        in check.stdout.replace("\n", " ")
    )
    assert "net.1.weight has shape [16, 5] in the network, [32, 5] in the encoder" in check.stdout.replace("\n", "")
    run = cli("run", "deepsad", "synthetic", "-p", "net_name=tiny_bad", *FAST, "--data", "n_samples=300")
    assert run.exit_code == 1
    message = " ".join(run.stderr.split())
    assert "error: network 'tiny_bad': the autoencoder's encoder must be the network itself" in message
    assert "size mismatch" not in message and "Traceback" not in message


#: detectors that break the estimator contract in the ways issue 19 found
SLOPPY_DETECTORS = """\
import numpy as np
from sadkit import Detector

class _Base(Detector):
    def _score(self, X):
        d = np.sqrt(((X.reshape(len(X), 1, -1) - self.reference_[None]) ** 2).sum(-1))
        return np.sort(d, axis=1)[:, : self._k()].mean(1)

    def _get_state(self):
        return {"reference": self.reference_}

    def _set_state(self, state):
        self.reference_ = state["reference"].numpy()

class EagerLOF(_Base):
    '''Builds its model in __init__: set_params(n_neighbors=50) never reaches fit.'''

    def __init__(self, n_neighbors: int = 20):
        self.n_neighbors = n_neighbors
        self._model = {"k": n_neighbors}

    def _k(self):
        return self._model["k"]

    def _fit(self, X, y, *, eval_set, callbacks):
        self.reference_ = X.reshape(len(X), -1)

class NoSeed(_Base):
    '''Declares a seed and subsamples with an unseeded generator.'''

    def __init__(self, n_neighbors: int = 5, seed: int = 0):
        self.n_neighbors = n_neighbors
        self.seed = seed

    def _k(self):
        return self.n_neighbors

    def _fit(self, X, y, *, eval_set, callbacks):
        rows = np.random.default_rng().choice(len(X), size=len(X) // 2, replace=False)
        self.reference_ = X[rows].reshape(len(rows), -1)
"""

#: a dataset whose test split is drawn from the training rows
OVERLAPPING_DATASET = """\
import numpy as np
from sadkit import Dataset, Split

class Overlapping(Dataset):
    def __init__(self, seed: int = 0):
        super().__init__(seed=seed)

    def load(self):
        rng = np.random.default_rng(self.seed)
        X = rng.normal(size=(200, 4)).astype(np.float32)
        y = (np.arange(200) % 10 == 0).astype(np.int64)
        test = rng.choice(200, size=50, replace=False)  # drawn from every row, training rows included
        train, val = Split(X[:150], y[:150], ids=np.arange(150)), Split(X[:0], y[:0], ids=[])
        return train, val, Split(X[test], y[test], ids=test)
"""


def test_detectors_that_break_the_estimator_contract_are_named(cli, fake_distribution):
    fake_distribution(
        "sadkit-sloppy",
        {DETECTORS: {"lof": "sloppydet:EagerLOF", "noseed": "sloppydet:NoSeed"}},
        {"sloppydet.py": SLOPPY_DETECTORS},
    )
    lof = {r["check"]: r for r in _rows(cli("plugins", "check", "lof", "--json"))}
    assert lof["init_does_no_work"]["message"].startswith(
        "__init__ set _model, which is not a parameter: build it in _fit"
    )
    assert lof["set_params_reaches_fit"]["message"].startswith(
        "set_params(n_neighbors=21) on a detector built with the checks' parameters, then fit, gives other scores than"
        " EagerLOF(n_neighbors=21)"
    )
    noseed = cli("plugins", "check", "noseed")
    assert noseed.exit_code == 1
    assert "FAIL same_seed_same_scores: two fits with the same parameters give scores that differ by up to" in (
        noseed.stdout.replace("\n", " ")
    )
    assert "the detector does not honour its seed (seed=0)" in noseed.stdout.replace("\n", " ")


def test_a_dataset_with_overlapping_splits_is_named(cli, fake_distribution):
    fake_distribution(
        "sadkit-overlap",
        {"sadkit.datasets": {"overlapping": "overlapping:Overlapping"}},
        {"overlapping.py": OVERLAPPING_DATASET},
    )
    result = cli("plugins", "check", "overlapping")
    assert result.exit_code == 1
    text = " ".join(result.stdout.split())
    assert "dataset 'overlapping'" in text
    assert "FAIL splits_disjoint:" in text and "id(s) are in both the train and the test split" in text
