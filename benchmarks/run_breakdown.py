"""Where the wall time of one `sadkit run` goes: the CLI's own code path in this process, its phases timed.

    python benchmarks/run_breakdown.py cardio [--no-model]     (in a folder whose tracking store exists)

The phases are timed by wrapping sadkit's functions (imports, the store, fit, logging, plots, the model);
the epochs are the run's own ``pretrain_seconds + train_seconds``. It also says whether ``torch._dynamo``
and ``matplotlib.pyplot`` were imported.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import resource
import sys
import time
from typing import Any

timings: dict[str, float] = {}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _import(label: str, module: str) -> Any:
    started = time.perf_counter()
    found = importlib.import_module(module)
    timings[label] = time.perf_counter() - started
    return found


def _wrap(owner: Any, name: str, label: str) -> None:
    function = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            timings[label] = timings.get(label, 0.0) + time.perf_counter() - started

    setattr(owner, name, timed)


def main() -> None:
    started, cpu = time.perf_counter(), _cpu()
    cli = _import("import the CLI", "sadkit.cli")
    experiment = _import("import torch, scikit-learn (sadkit.experiment)", "sadkit.experiment")
    _import("import mlflow (sadkit.tracking)", "sadkit.tracking")
    tracker = importlib.import_module("sadkit.tracking.tracker")
    run = importlib.import_module("sadkit.tracking.run")
    detector = importlib.import_module("sadkit.detector")
    _wrap(tracker.Tracker, "__init__", "open the tracking store (incl. its SQLAlchemy import)")
    _wrap(experiment, "build", "build dataset and detector")
    _wrap(detector.Detector, "fit", "fit")
    _wrap(detector.Detector, "score", "score val and test")
    for name, label in (
        ("log_params", "log params"),
        ("log_metrics", "log metrics (the epochs' too)"),
        ("log_dict", "log dicts"),
        ("log_arrays", "log arrays"),
        ("log_evaluation_plots", "ROC and histogram plots (incl. matplotlib import)"),
        ("log_detector", "log the model (incl. mlflow.pyfunc)"),
    ):
        _wrap(run.RunLogger, name, label)
    dataset, extra = sys.argv[1], sys.argv[2:]
    sys.argv = ["sadkit", "run", "deepsad", "odds", "--data", f"name={dataset}", "--data", "ratio_known_outlier=0.01"]
    sys.argv += ["--seed", "0", "--json", "--threads", "1", *extra]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        cli.main()
    result = json.loads(out.getvalue())
    timings["  of which epochs (pretrain_seconds + train_seconds)"] = (
        result["pretrain_seconds"] + result["train_seconds"]
    )
    total = time.perf_counter() - started
    for label, seconds in timings.items():
        print(f"{label:58s} {seconds:6.2f} s {100 * seconds / total:5.1f}%")
    print(f"{'total wall (after the interpreter started)':58s} {total:6.2f} s; CPU {_cpu() - cpu:.2f} s")
    print(
        f"test AUROC {result['test_auroc']}; torch._dynamo imported: {'torch._dynamo' in sys.modules};"
        f" matplotlib.pyplot imported: {'matplotlib.pyplot' in sys.modules}"
    )


if __name__ == "__main__":
    main()
