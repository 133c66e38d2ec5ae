"""Start-up and run overhead of two checkouts side by side, measured in one run with interleaved repeats.

What it measures, each in a fresh process, for this checkout and a baseline checkout (e.g. main, checked
out beside this one with its own .venv):

- ``sadkit --help`` against ``python -c pass``, ``sadkit plugins list``, ``python -c "import sadkit"``,
  and which heavy packages ``sadkit --help`` imports;
- per dataset (cardio and thyroid by default): ``sadkit run deepsad odds`` at the paper's schedule
  (150 + 150 epochs, ``--threads 1``, an existing tracking store), with and without model logging
  (``--no-model``), and the share of its wall time spent in its own training epochs (the run's
  ``pretrain_seconds + train_seconds``); beside it, the Python API doing the same fit in one process
  (the same dataset, detector and seed; no tracking), timed around ``fit``;
- ``sadkit reproduce projects/odds_quick.yaml`` end to end, each time with a fresh tracking store.

Every measurement is repeated ``--repeats`` times, the checkouts alternating (which goes first alternates
too), so that load on a shared machine falls on both alike; the table shows medians of the wall time and
of the CPU time (user + system) of the measured process. Results go to ``OUT/overhead.md`` and
``OUT/overhead.json``.

    python benchmarks/overhead.py --baseline ../base-main --out results/overhead
    python benchmarks/overhead.py --baseline ../base-main --repeats 3 --datasets cardio --no-reproduce
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]
SHARED_DATA = HERE.parent / "shared" / "data"
HEAVY = ("torch", "sklearn", "mlflow", "optuna", "matplotlib", "pandas", "scipy", "numpy", "sqlalchemy")
RUN = ["run", "deepsad", "odds", "--data", "ratio_known_outlier=0.01", "--seed", "0", "--json", "--threads", "1"]

#: the Python API doing the fit of ``sadkit run`` in one process (argv: dataset name); prints one JSON line
API_FIT = """
import json, sys, time
started = time.perf_counter()
from sadkit.experiment import ExperimentSpec, build
from sadkit.training import configure_threads
configure_threads(1)
spec = ExperimentSpec("deepsad", "odds", data={"name": sys.argv[1], "ratio_known_outlier": 0.01}, seed=0)
dataset, detector = build(spec, 0)
train, val, test = dataset.load()
t = time.perf_counter()
detector.fit(train.X, semi_y=train.semi_y)
fit = time.perf_counter() - t
timings = detector.timings_
from sadkit.metrics import auroc
scores = getattr(detector, "decision_function", detector.score)(test.X)  # score(X) was the scores, once
print(json.dumps({"fit": fit, "epochs": timings["pretrain"] + timings["train"],
                  "process": time.perf_counter() - started, "test_auroc": auroc(test.y, scores)}))
"""

#: the heavy packages in sys.modules after ``sadkit --help`` (argv: a JSON list of names)
HELP_IMPORTS = """
import json, sys
heavy = json.loads(sys.argv[1])
from sadkit.cli import main
sys.argv = ["sadkit", "--help"]
try:
    main()
except SystemExit:
    pass
sys.__stderr__.write("HEAVY " + json.dumps([m for m in heavy if m in sys.modules]) + "\\n")
"""


class Checkout:
    """A source tree with its own virtual environment (``.venv``)."""

    def __init__(self, label: str, root: Path) -> None:
        self.label = label
        self.root = root.resolve()
        self.python = self.root / ".venv" / "bin" / "python"
        self.sadkit = self.root / ".venv" / "bin" / "sadkit"
        for exe in (self.python, self.sadkit):
            if not exe.exists():
                raise SystemExit(f"{exe} does not exist: {label} needs its own .venv with sadkit installed")

    def commit(self) -> str:
        done = subprocess.run(
            ["git", "-C", str(self.root), "log", "-1", "--format=%h %s"], capture_output=True, text=True
        )
        return done.stdout.strip()[:80]


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run ``cmd``; its wall time, the CPU time (user + system) of it and its children, and its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({done.returncode}) in {cwd}:\n{done.stderr[-3000:]}")
    return {"wall": wall, "cpu": cpu, "stdout": done.stdout, "stderr": done.stderr}


def measurements(checkout: Checkout, datasets: list[str], reproduce: bool, work: Path) -> dict[str, Any]:
    """name -> a function running one repeat of that measurement for ``checkout`` (returns a dict of numbers)."""
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    py, cli = str(checkout.python), str(checkout.sadkit)
    store = work / checkout.label / "store"  # an existing store for the runs (created by the first run)
    store.mkdir(parents=True, exist_ok=True)

    def simple(cmd: list[str]):
        return lambda: {k: v for k, v in timed(cmd, work, env).items() if k in ("wall", "cpu")}

    def run(name: str, *extra: str):
        def once() -> dict[str, float]:
            out = timed([cli, *RUN, "--data", f"name={name}", *extra], store, env)
            result = json.loads(out["stdout"])
            epochs = result["pretrain_seconds"] + result["train_seconds"]
            return {
                "wall": out["wall"],
                "cpu": out["cpu"],
                "epochs": epochs,
                "share": epochs / out["wall"],
                "test_auroc": result["test_auroc"],
            }

        return once

    def api(name: str):
        def once() -> dict[str, float]:
            out = timed([py, "-c", API_FIT, name], work, env)
            result = json.loads(out["stdout"].strip().splitlines()[-1])
            return {
                "wall": out["wall"],
                "cpu": out["cpu"],
                "fit": result["fit"],
                "epochs": result["epochs"],
                "share": result["epochs"] / out["wall"],
                "test_auroc": result["test_auroc"],
            }

        return once

    def reproduction() -> dict[str, float]:
        with tempfile.TemporaryDirectory(dir=work) as fresh:  # a new tracking store every time
            spec = checkout.root / "projects" / "odds_quick.yaml"
            out = timed([cli, "reproduce", str(spec), "--out", "out", "--json"], Path(fresh), env)
        return {"wall": out["wall"], "cpu": out["cpu"]}

    found: dict[str, Any] = {
        "python -c pass": simple([py, "-c", "pass"]),
        "sadkit --help": simple([cli, "--help"]),
        "sadkit plugins list": simple([cli, "plugins", "list"]),
        "import sadkit": simple([py, "-c", "import sadkit"]),
    }
    for name in datasets:
        found[f"{name}: sadkit run"] = run(name)
        found[f"{name}: sadkit run --no-model"] = run(name, "--no-model")
        found[f"{name}: Python API fit"] = api(name)
    if reproduce:
        found["sadkit reproduce odds_quick.yaml"] = reproduction
    return found


def heavy_after_help(checkout: Checkout, work: Path) -> list[str]:
    cmd = [str(checkout.python), "-c", HELP_IMPORTS, json.dumps(HEAVY)]
    done = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    line = [ln for ln in done.stderr.splitlines() if ln.startswith("HEAVY ")]
    return json.loads(line[-1][6:]) if line else ["?"]


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def table(results: dict[str, dict[str, list[dict[str, float]]]], labels: list[str], repeats: int) -> list[str]:
    a, b = labels
    lines = [
        f"| measurement (median of {repeats}) | {a}: wall s | {a}: CPU s | {b}: wall s | {b}: CPU s | wall {b} / {a} |",
        "|---|---|---|---|---|---|",
    ]
    for name in results[a]:
        ra, rb = results[a][name], results[b][name]
        lines.append(
            f"| {name} | {median(ra, 'wall'):.2f} | {median(ra, 'cpu'):.2f} | {median(rb, 'wall'):.2f} |"
            f" {median(rb, 'cpu'):.2f} | {median(rb, 'wall') / median(ra, 'wall'):.2f}× |"
        )
    lines += [
        "",
        f"| training runs (median of {repeats}) | {a}: epochs s | {a}: share of wall | {b}: epochs s |"
        f" {b}: share of wall | test AUROC |",
        "|---|---|---|---|---|---|",
    ]
    for name in results[a]:
        ra, rb = results[a][name], results[b][name]
        if "epochs" not in ra[0]:
            continue
        auroc = sorted({f"{r['test_auroc']:.6f}" for r in ra + rb})
        lines.append(
            f"| {name} | {median(ra, 'epochs'):.2f} | {100 * median(ra, 'share'):.0f}% | {median(rb, 'epochs'):.2f} |"
            f" {100 * median(rb, 'share'):.0f}% | {' / '.join(auroc)} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout (with its own .venv)")
    parser.add_argument("--baseline-label", default="base-main")
    parser.add_argument("--label", default="this branch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--datasets", nargs="+", default=["cardio", "thyroid"])
    parser.add_argument("--no-reproduce", action="store_true", help="skip the odds_quick reproduction")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "overhead")
    args = parser.parse_args()
    os.environ.setdefault("SADKIT_DATA", str(SHARED_DATA))
    checkouts = [Checkout(args.label, HERE), Checkout(args.baseline_label, args.baseline)]
    labels = [c.label for c in checkouts]
    results: dict[str, dict[str, list[dict[str, float]]]] = {c.label: {} for c in checkouts}
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="sadkit-overhead-") as tmp:
        work = Path(tmp)
        plans = {c.label: measurements(c, args.datasets, not args.no_reproduce, work) for c in checkouts}
        heavy = {c.label: heavy_after_help(c, work) for c in checkouts}
        for c in checkouts:  # warm-up, not counted: caches, compiled bytecode, the tracking stores
            for name in ("sadkit --help", f"{args.datasets[0]}: sadkit run --no-model"):
                plans[c.label][name]()
        for rep in range(args.repeats):
            for name in plans[labels[0]]:
                order = checkouts if (rep + len(results[labels[0]].get(name, []))) % 2 == 0 else checkouts[::-1]
                for c in order:
                    results[c.label].setdefault(name, []).append(plans[c.label][name]())
                print(f"[{rep + 1}/{args.repeats}] {name}", flush=True)
    lines = [
        "# Start-up and run overhead",
        "",
        f"`python benchmarks/overhead.py {' '.join(sys.argv[1:])}`, {time.strftime('%Y-%m-%d')}, "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), load average at the start "
        f"{os.getloadavg()[0]:.1f}; {time.time() - started:.0f} s in all.",
        "",
        *[f"- {c.label}: `{c.root}` at {c.commit()}" for c in checkouts],
        *[
            f"- heavy packages imported by `sadkit --help` in {label}: {', '.join(h) or 'none'}"
            for label, h in heavy.items()
        ],
        "",
        *table(results, labels, args.repeats),
        "",
        "Runs: `sadkit run deepsad odds --data name=NAME --data ratio_known_outlier=0.01 --seed 0 --json --threads 1`"
        " (the paper's 150 + 150 epochs) in a folder whose tracking store exists; epochs = the run's"
        " `pretrain_seconds + train_seconds`; share = epochs / the process's wall time. The Python API row"
        " times a process that builds the same dataset and detector and calls `fit` (no tracking, no"
        " per-epoch validation). The reproduction starts from a fresh tracking store each time.",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "overhead.md").write_text("\n".join(lines) + "\n")
    (args.out / "overhead.json").write_text(
        json.dumps({"argv": sys.argv[1:], "heavy_after_help": heavy, "results": results}, indent=1) + "\n"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
