"""The paper's ODDS table for any list of detectors: 10 seeds x 6 datasets, mean ± std test AUROC.

The setting of Ruff et al. (2020), Table 3: gamma_l = 0.01 labeled anomalies, gamma_p = 0 pollution,
the six ODDS datasets, 10 seeds. Every run is an ordinary sadkit experiment (``run_experiment``, one
CPU thread), tracked in MLflow: one SQLite store per worker process under the output folder, which
is also the working directory of the runs (so their artifacts land there too; both are git-ignored).

A *method* is a label, a detector and parameters (see ``METHODS``); ``--set`` changes parameters
without editing the script. The hybrid methods use an autoencoder pretrained as Deep SAD pretrains:
``ocsvm-hybrid`` trains it in its own run and logs its model; ``ssad-hybrid`` (and any method with
``"ae_from": "ocsvm-hybrid"``) loads that very autoencoder from the earlier run of the same dataset
and seed (``ae_run_id``), so both hybrids see the same features and the pretraining is paid once.

    python benchmarks/odds_baselines.py --out results/odds_baselines              # the full table
    python benchmarks/odds_baselines.py --seeds 2 --datasets cardio thyroid --methods ocsvm-raw kde
    python benchmarks/odds_baselines.py --set ssad-raw.max_samples=2000 --set ae_n_epochs=50

Writes ``runs.csv`` (one row per run, with the hyperparameters each run selected) and ``table.md``
(mean ± std beside the paper, and the difference). Runs already in ``runs.csv`` are skipped, so an
interrupted benchmark resumes; ``--table-only`` rewrites the table from ``runs.csv``.
"""

from __future__ import annotations

import os

# One thread per run for every numerical library (torch's is set by the runner), before any is loaded.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import yaml  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DATASETS = ["arrhythmia", "cardio", "satellite", "satimage-2", "shuttle", "thyroid"]

#: Ruff et al. (2020), Table 3 (ODDS, gamma_l = 0.01, gamma_p = 0), from the project's one file of the
#: paper's numbers: label -> [(mean, std or None)] in the order of DATASETS.
_PAPER_ODDS = yaml.safe_load((Path(__file__).resolve().parents[1] / "projects" / "paper_results.yaml").read_text())
PAPER: dict[str, list[tuple[float, float | None]]] = {
    label: [tuple(by_dataset[d]) for d in DATASETS] for label, by_dataset in _PAPER_ODDS["odds"]["values"].items()
}

#: name -> label (the paper's column, if any), detector, parameters; order = run order in a cell
METHODS: dict[str, dict[str, Any]] = {
    "ocsvm-raw": {"label": "OC-SVM raw", "detector": "ocsvm", "params": {"max_samples": 5000}},
    "ocsvm-hybrid": {
        "label": "OC-SVM hybrid",
        "detector": "ocsvm",
        "params": {"features": "ae", "max_samples": 5000},
        "log_model": True,  # its autoencoder is loaded by ssad-hybrid
    },
    "ssad-raw": {"label": "SSAD raw", "detector": "ssad", "params": {"max_samples": 1500}},
    "ssad-hybrid": {
        "label": "SSAD hybrid",
        "detector": "ssad",
        "params": {"features": "ae", "max_samples": 1500},
        "ae_from": "ocsvm-hybrid",
    },
    "semidgm": {"label": "SS-DGM", "detector": "semidgm", "params": {}},
    "supervised": {"label": "Supervised", "detector": "supervised", "params": {}},
    "iforest": {"label": "Isolation Forest", "detector": "iforest", "params": {}},
    "kde": {"label": "KDE", "detector": "kde", "params": {}},
    "deepsad": {"label": "Deep SAD", "detector": "deepsad", "params": {}},
    "deepsvdd": {"label": "Deep SVDD", "detector": "deepsvdd", "params": {}},
}
DEFAULT_METHODS = ["ocsvm-raw", "ocsvm-hybrid", "ssad-raw", "ssad-hybrid", "semidgm", "supervised", "iforest", "kde"]

FIELDS = [
    "method",
    "detector",
    "dataset",
    "seed",
    "test_auroc",
    "test_auprc",
    "val_auroc",
    "train_seconds",
    "pretrain_seconds",
    "wall_seconds",
    "cpu_seconds",
    "n_train",
    "selected",
    "params",
    "run_id",
    "tracking_uri",
]


def method_params(name: str, overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A method's parameters with the ``--set`` overrides (``*`` applies to every method)."""
    params = dict(METHODS[name]["params"])
    from sadkit import registry

    accepted = registry.get("detectors", METHODS[name]["detector"])._get_param_names()
    for key, value in overrides.get("*", {}).items():
        if key in accepted:
            params[key] = value
    params.update(overrides.get(name, {}))
    return params


def _run_cell(task: tuple[str, int, list[str], dict[str, dict[str, Any]], str, dict[str, dict]]) -> list[dict]:
    """Every method of one (dataset, seed), in order, in this worker's MLflow store."""
    dataset, seed, methods, overrides, out, earlier = task
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.chdir(out)  # MLflow puts the artifacts of SQLite stores under the working directory
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    from sadkit.experiment import ExperimentSpec, run_experiment

    tracking_uri = f"sqlite:///{Path(out).resolve()}/mlflow-{os.getpid()}.db"
    rows = []
    done = dict(earlier)  # method -> row of this cell from an earlier invocation
    for name in methods:
        method = METHODS[name]
        params = method_params(name, overrides)
        if method.get("ae_from"):
            source = done.get(method["ae_from"])
            if source is None:
                raise SystemExit(f"{name} needs the autoencoder of {method['ae_from']}: run that method too")
            params.setdefault("ae_run_id", source["run_id"])
            params.setdefault("ae_tracking_uri", source["tracking_uri"])
        spec = ExperimentSpec(
            detector=method["detector"],
            dataset="odds",
            params=params,
            data={"name": dataset, "ratio_known_outlier": 0.01, "ratio_pollution": 0.0},
            seed=seed,
            device="cpu",
            threads=1,
            log_model=bool(method.get("log_model", False)),
            experiment="odds-baselines",
            tracking_uri=tracking_uri,
        )
        start, cpu_start = time.perf_counter(), time.process_time()
        result = run_experiment(spec)
        row = {k: getattr(result, k) for k in FIELDS if hasattr(result, k) and k not in ("dataset", "params")}
        row.update(
            method=name,
            dataset=dataset,
            wall_seconds=time.perf_counter() - start,
            cpu_seconds=time.process_time() - cpu_start,
            selected=json.dumps(result.selected, sort_keys=True),
            params=json.dumps(params, sort_keys=True),
            tracking_uri=tracking_uri,
        )
        done[name] = row
        rows.append(row)
    return rows


def _read(csv_path: Path) -> list[dict]:
    if not csv_path.exists():
        return []
    text = {"method", "detector", "dataset", "run_id", "selected", "params", "tracking_uri"}
    with csv_path.open() as f:
        return [{k: (v if k in text else float(v)) for k, v in r.items()} for r in csv.DictReader(f)]


def _fmt(values: list[float]) -> str:
    return f"{np.mean(values):.1f} ± {np.std(values):.1f}" if values else "—"


def table(rows: list[dict], methods: list[str]) -> str:
    """Mean ± std test AUROC (%) per method and dataset, the paper's value under it, and the difference."""
    lines = [
        "| method | | " + " | ".join(DATASETS) + " |",
        "|---|---|" + "---|" * len(DATASETS),
    ]
    for name in methods:
        label = METHODS[name]["label"]
        per_dataset = [
            [100 * r["test_auroc"] for r in rows if r["method"] == name and r["dataset"] == d] for d in DATASETS
        ]
        n = sorted({len(v) for v in per_dataset if v})
        seeds = f" (n={n[0]})" if len(n) == 1 else f" (n={n})" if n else ""
        lines.append(f"| {label} | sadkit{seeds} | " + " | ".join(_fmt(v) for v in per_dataset) + " |")
        paper = PAPER.get(label)
        if paper:
            cells = [f"{m}" + (f" ± {s}" if s is not None else "") for m, s in paper]
            lines.append("| | paper | " + " | ".join(cells) + " |")
            deltas = [f"{np.mean(v) - m:+.1f}" if v else "" for v, (m, _) in zip(per_dataset, paper, strict=True)]
            lines.append("| | Δ | " + " | ".join(deltas) + " |")
    seeds = [len({int(r["seed"]) for r in rows if r["dataset"] == d and r["method"] in methods}) for d in DATASETS]
    lines += ["", "Seeds per dataset: " + ", ".join(f"{d} {n}" for d, n in zip(DATASETS, seeds, strict=True)) + "."]
    lines += [
        "",
        "Median CPU time of one run in seconds (fit, selection, evaluation and tracking; 1 thread):",
        "",
        "| method | " + " | ".join(DATASETS) + " |",
        "|---|" + "---|" * len(DATASETS),
    ]
    for name in methods:
        cells = []
        for d in DATASETS:
            t = [r["cpu_seconds"] for r in rows if r["method"] == name and r["dataset"] == d]
            cells.append(f"{np.median(t):.1f}" if t else "—")
        lines.append(f"| {METHODS[name]['label']} | " + " | ".join(cells) + " |")
    cpu = sum(r["cpu_seconds"] for r in rows if r["method"] in methods)
    wall = sum(r["wall_seconds"] for r in rows if r["method"] in methods)
    lines += ["", f"Total of these runs: {cpu / 60:.1f} min CPU, {wall / 60:.1f} min wall (on a shared machine).", ""]
    return "\n".join(lines)


def _same_params(row: dict, params: dict[str, Any]) -> bool:
    """Whether a row of runs.csv ran with ``params`` (``ae_run_id``/``ae_tracking_uri`` are per run)."""
    logged = {k: v for k, v in json.loads(row["params"]).items() if k not in ("ae_run_id", "ae_tracking_uri")}
    return logged == json.loads(json.dumps(params))


def _parse_overrides(pairs: list[str]) -> dict[str, dict[str, Any]]:
    """``METHOD.key=value`` or ``key=value`` (every method that has that parameter); values are YAML."""
    overrides: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set expects METHOD.key=value or key=value, got {pair!r}")
        method, dot, param = key.rpartition(".")
        method = method if dot else "*"
        if method != "*" and method not in METHODS:
            raise SystemExit(f"--set {pair}: unknown method {method!r}; the methods are {', '.join(METHODS)}")
        overrides.setdefault(method, {})[param] = yaml.safe_load(value)
    return overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/odds_baselines")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, choices=list(METHODS))
    parser.add_argument("--datasets", nargs="+", default=DATASETS, choices=DATASETS)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="[METHOD.]KEY=VALUE")
    parser.add_argument("--table-only", action="store_true", help="only rewrite table.md from runs.csv")
    parser.add_argument(
        "--data-root",
        default=os.environ.get("SADKIT_DATA") or (str(SHARED_DATA) if SHARED_DATA.is_dir() else None),
        help="folder holding odds/*.mat [default: $SADKIT_DATA, else ../shared/data beside the repository]",
    )
    args = parser.parse_args()
    if args.data_root:
        os.environ["SADKIT_DATA"] = str(Path(args.data_root).resolve())  # read by the dataset in every worker
    overrides = _parse_overrides(args.overrides)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "runs.csv"
    rows = _read(csv_path)
    # A run counts as done only if it ran with the parameters the method has now (``--set`` included):
    # rows from other settings stay in runs.csv but leave the table and are run again.
    current = {m: method_params(m, overrides) for m in args.methods}
    rows = [r for r in rows if r["method"] in current and _same_params(r, current[r["method"]])]
    if args.table_only:
        (out / "table.md").write_text(table(rows, args.methods))
        print(table(rows, args.methods))
        return
    done = {(r["method"], r["dataset"], int(r["seed"])): r for r in rows}
    tasks = []
    for seed in range(args.seeds):
        for dataset in args.datasets:
            todo = [m for m in args.methods if (m, dataset, seed) not in done]
            if todo:
                earlier = {m: r for (m, d, s), r in done.items() if d == dataset and s == seed}
                tasks.append((dataset, seed, todo, overrides, str(out), earlier))
    new_file = not csv_path.exists()
    with csv_path.open("a", newline="") as f, ProcessPoolExecutor(args.workers) as pool:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if new_file:
            writer.writeheader()
        for cell in pool.map(_run_cell, tasks):
            for row in cell:
                writer.writerow({k: row.get(k) for k in FIELDS})
                rows.append(row)
                print(
                    f"{row['method']:13s} {row['dataset']:11s} seed {int(row['seed'])}: test AUROC"
                    f" {100 * row['test_auroc']:.1f}  ({row['cpu_seconds']:.1f} s CPU)  {row['selected']}",
                    flush=True,
                )
            f.flush()
            (out / "table.md").write_text(table(rows, args.methods))
    (out / "table.md").write_text(table(rows, args.methods))
    print(table(rows, args.methods))


if __name__ == "__main__":
    main()
