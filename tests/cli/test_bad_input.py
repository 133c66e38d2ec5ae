"""Bad parameters are refused before a run opens, in one line, and parameters that do nothing are said."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["deepsad", "synthetic", "-p", "n_epochs=abc"], "n_epochs must be an integer, got 'abc'"),
        (["deepsad", "synthetic", "-p", "n_epochs=2.5"], "n_epochs must be an integer, got 2.5"),
        (["deepsad", "synthetic", "-p", "lr=abc"], "lr must be a number, got 'abc'"),
        (["deepsad", "synthetic", "-p", "lr_milestones=abc"], "lr_milestones must be a list of integers"),
        (["ocsvm", "synthetic", "-p", "nu=abc"], "nu must be a number or null, got 'abc'"),
        (["deepsad", "synthetic", "-p", "lr=-1"], "lr=-1"),
        (["deepsad", "synthetic", "-p", "threshold=top:3"], "threshold must be"),
        (["deepsad", "synthetic", "-d", "ratio_known_outlier=0.9"], "ratio_known_outlier"),
        (["deepsad", "synthetic", "-p", "nosuch=1"], "has no parameter 'nosuch'"),
    ],
)
def test_each_bad_input_is_one_line_and_leaves_no_run(cli, tracking_uri, args, message):
    result = cli("run", *args, "--experiment", "bad-input")
    assert result.exit_code == 1, result.stdout
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    experiment = MlflowClient(tracking_uri).get_experiment_by_name("bad-input")
    assert experiment is None or not MlflowClient(tracking_uri).search_runs([experiment.experiment_id])


def test_a_parameter_that_does_nothing_is_said(cli, tracking_uri):
    result = cli("run", "iforest", "synthetic", "--device", "cpu", "-p", "ae_n_epochs=5", "--no-model")
    assert result.exit_code == 0, result.stderr
    assert "warning: iforest: ae_n_epochs=5, device='cpu' has no effect" in result.stderr
    quiet = cli("run", "iforest", "synthetic", "--no-model")
    assert quiet.exit_code == 0 and "no effect" not in quiet.stderr
