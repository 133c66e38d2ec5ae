"""A run's figures drawn by the helper process (sadkit.tracking.figures), and runs that end once they are in."""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np
import pytest

from sadkit.experiment import ExperimentSpec, run_experiments
from sadkit.figure_worker import draw
from sadkit.tracking import figures
from sadkit.tracking.run import RunLogger

PLOTS = {"plots/roc_test.png", "plots/scores_test.png"}
pytestmark = pytest.mark.filterwarnings("ignore:IsolationForest cannot train stacked")


@pytest.fixture(autouse=True)
def _helper_on(monkeypatch):
    monkeypatch.delenv(figures.ENV_SWITCH, raising=False)
    monkeypatch.setattr(figures.os, "cpu_count", lambda: 2)  # as on a machine with a core to spare


def _specs(tracking_uri: str, odds_root, n: int = 2) -> list[ExperimentSpec]:
    return [
        ExperimentSpec(
            "iforest", "odds", data={"name": "thyroid", "root": str(odds_root)}, seed=s, tracking_uri=tracking_uri,
            log_model=False,
        )
        for s in range(n)
    ]  # fmt: skip


def _artifacts(client, run_id: str) -> set[str]:
    return {f.path for f in client.list_artifacts(run_id, "plots")}


def test_the_helper_draws_the_figures_and_the_runs_end_with_them(tracking_uri, odds_root, monkeypatch):
    from mlflow import MlflowClient

    def drawn_here(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("the helper should have drawn these figures")

    monkeypatch.setattr(RunLogger, "_draw_here", drawn_here)
    with figures.background_figures():
        assert figures.active_renderer() is not None
        results = run_experiments(_specs(tracking_uri, odds_root))
    client = MlflowClient(tracking_uri)
    for result in results:
        run = client.get_run(result.run_id)
        assert run.info.status == "FINISHED"
        assert _artifacts(client, result.run_id) == PLOTS
    assert not figures._deferred


def test_a_figure_the_helper_fails_is_drawn_here(tracking_uri, odds_root, monkeypatch):
    from mlflow import MlflowClient

    def failing(self, jobs):  # noqa: ANN001
        future: Future = Future()
        future.set_exception(RuntimeError("the figure helper failed: boom"))
        return future

    monkeypatch.setattr(figures.FigureRenderer, "submit", failing)
    with figures.background_figures():
        (result,) = run_experiments(_specs(tracking_uri, odds_root, n=1))
    client = MlflowClient(tracking_uri)
    assert client.get_run(result.run_id).info.status == "FINISHED"
    assert _artifacts(client, result.run_id) == PLOTS


def test_on_ctrl_c_a_run_waiting_for_its_figures_ends_finished_with_them(tracking_uri, odds_root, monkeypatch):
    """Its work is done: Ctrl-C (or SIGTERM) does not lose it. A helper that does not answer in time (here:
    never) leaves the figures to this process."""
    from mlflow import MlflowClient

    monkeypatch.setattr(figures.FigureRenderer, "submit", lambda self, jobs: Future())  # never drawn
    monkeypatch.setattr(figures, "INTERRUPTED_WAIT_SECONDS", 0.1)
    with pytest.raises(KeyboardInterrupt), figures.background_figures():
        (result,) = run_experiments(_specs(tracking_uri, odds_root, n=1))
        assert MlflowClient(tracking_uri).get_run(result.run_id).info.status == "RUNNING"  # kept open
        raise KeyboardInterrupt
    client = MlflowClient(tracking_uri)
    assert client.get_run(result.run_id).info.status == "FINISHED"
    assert _artifacts(client, result.run_id) == PLOTS
    assert not figures._deferred


def test_outside_the_block_or_switched_off_figures_are_drawn_here(monkeypatch):
    assert figures.active_renderer() is None
    monkeypatch.setenv(figures.ENV_SWITCH, "0")
    with figures.background_figures():
        assert figures.active_renderer() is None


def test_the_helper_draws_only_sadkit_figures(tmp_path):
    y, s = np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.8])
    draw([("roc_figure", (y, s, "test"), str(tmp_path / "roc.png"))])
    assert (tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="not a figure"):
        draw([("anomaly_grids", (), str(tmp_path / "x.png"))])


def test_the_helper_removes_its_folder_when_its_input_ends(tmp_path):
    import subprocess
    import sys

    folder = tmp_path / "figures"
    folder.mkdir()
    (folder / "left.png").write_bytes(b"x")
    helper = subprocess.Popen([sys.executable, "-m", "sadkit.figure_worker", str(folder)], stdin=subprocess.PIPE)
    helper.stdin.close()  # as when the parent process dies
    assert helper.wait(timeout=60) == 0
    assert not folder.exists()


def test_runs_waiting_for_figures_end_between_models_that_train_one_by_one(tracking_uri, odds_root, monkeypatch):
    """A task of models that cannot stack trains them one by one; the runs of the task before it that wait
    for their figures are ended after each model, not only once the whole task has trained."""
    from sadkit.plugins.shallow.iforest import IsolationForest as IForest

    events: list[str] = []
    real_settle, real_fit = figures.settle, IForest._fit

    def settle(*args, **kwargs):  # noqa: ANN002, ANN003
        events.append("settle")
        return real_settle(*args, **kwargs)

    def fit(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        events.append("fit")
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(figures, "settle", settle)
    monkeypatch.setattr(IForest, "_fit", fit)
    with figures.background_figures():
        run_experiments(_specs(tracking_uri, odds_root, n=3))
    assert events[:6] == ["fit", "settle"] * 3
