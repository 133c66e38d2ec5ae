"""Deep SAD and Deep SVDD on the paper's six ODDS datasets, side by side with the paper's Table.

The paper's setting (Ruff et al. 2020, Section 4.3 and Appendix D): gamma_l = 0.01 labeled anomalies,
gamma_p = 0 pollution, Adam with lr 1e-4 for 150 epochs (milestone 50), the same for autoencoder
pretraining, weight decay 1e-6, batch 128, 10 seeds. Every run is a normal sadkit experiment,
tracked in MLflow (one SQLite store per worker under the output folder).

    python benchmarks/odds_paper_table.py --out results/odds_deepsad --workers 1
    python benchmarks/odds_paper_table.py --seeds 2 --epochs 20      # a quick look

Writes ``runs.csv`` (one row per run) and ``table.md`` (mean ± std test AUROC beside the paper).
Runs already in ``runs.csv`` are skipped, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import yaml

DATASETS = ["arrhythmia", "cardio", "satellite", "satimage-2", "shuttle", "thyroid"]
REPO = Path(__file__).resolve().parent.parent
# Ruff et al. (2020), Table 3, from the project's one file of the paper's numbers.
_PAPER_ODDS = yaml.safe_load((REPO / "projects" / "paper_results.yaml").read_text())["odds"]["values"]
PAPER = {"deepsad": _PAPER_ODDS["Deep SAD"], "deepsvdd": _PAPER_ODDS["Deep SVDD"]}
FIELDS = [
    "detector",
    "dataset",
    "seed",
    "test_auroc",
    "test_auprc",
    "val_auroc",
    "train_seconds",
    "pretrain_seconds",
    "wall_seconds",
    "n_train",
    "run_id",
]


def _run(cell: tuple[str, str, int, int, str]) -> dict:
    detector, dataset, seed, epochs, out = cell
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from sadkit.experiment import ExperimentSpec, run_experiment

    params = {
        "n_epochs": epochs,
        "ae_n_epochs": epochs,
        "lr_milestones": [min(50, epochs)],
        "ae_lr_milestones": [min(50, epochs)],
    }
    spec = ExperimentSpec(
        detector=detector,
        dataset="odds",
        params=params,
        data={"name": dataset, "ratio_known_outlier": 0.01, "ratio_pollution": 0.0},
        seed=seed,
        device="cpu",
        threads=1,
        log_model=False,
        experiment="odds-paper-table",
        tracking_uri=f"sqlite:///{Path(out).resolve()}/mlflow-{os.getpid()}.db",
    )
    start = time.perf_counter()
    result = run_experiment(spec)
    row = {k: getattr(result, k) for k in FIELDS if hasattr(result, k)}
    row["dataset"] = dataset  # the ODDS file, not the plugin name
    row["wall_seconds"] = time.perf_counter() - start
    return row


def _table(rows: list[dict]) -> str:
    lines = [
        "| dataset | Deep SAD (sadkit) | Deep SAD (paper) | Δ | Deep SVDD (sadkit) | Deep SVDD (paper) | Δ |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset in DATASETS:
        cells = [dataset]
        for detector in ("deepsad", "deepsvdd"):
            values = [100 * r["test_auroc"] for r in rows if r["detector"] == detector and r["dataset"] == dataset]
            mean_p, std_p = PAPER[detector][dataset]
            if values:
                mean, std = float(np.mean(values)), float(np.std(values))
                cells += [f"{mean:.1f} ± {std:.1f} (n={len(values)})", f"{mean_p} ± {std_p}", f"{mean - mean_p:+.1f}"]
            else:
                cells += ["—", f"{mean_p} ± {std_p}", ""]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Wall time of one run (pretraining + training + evaluation, 1 CPU thread), median over seeds:")
    lines.append("")
    lines.append("| dataset | n_train | Deep SAD s | Deep SVDD s |")
    lines.append("|---|---|---|---|")
    for dataset in DATASETS:
        cell = [dataset]
        n = [r["n_train"] for r in rows if r["dataset"] == dataset]
        cell.append(str(int(np.median(n))) if n else "—")
        for detector in ("deepsad", "deepsvdd"):
            t = [float(r["wall_seconds"]) for r in rows if r["detector"] == detector and r["dataset"] == dataset]
            cell.append(f"{np.median(t):.1f}" if t else "—")
        lines.append("| " + " | ".join(cell) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/odds_deepsad")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--detectors", nargs="+", default=["deepsad", "deepsvdd"])
    parser.add_argument("--datasets", nargs="+", default=DATASETS)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "runs.csv"
    rows = []
    if csv_path.exists():
        with csv_path.open() as f:
            rows = [
                {k: (v if k in ("detector", "dataset", "run_id") else float(v)) for k, v in r.items()}
                for r in csv.DictReader(f)
            ]
    done = {(r["detector"], r["dataset"], int(r["seed"])) for r in rows}
    cells = [
        (d, ds, s, args.epochs, str(out))
        for s in range(args.seeds)
        for ds in args.datasets
        for d in args.detectors
        if (d, ds, s) not in done
    ]
    new_file = not csv_path.exists()
    with csv_path.open("a", newline="") as f, ProcessPoolExecutor(args.workers) as pool:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if new_file:
            writer.writeheader()
        for row in pool.map(_run, cells):
            writer.writerow(row)
            f.flush()
            rows.append(row)
            print(
                f"{row['detector']:9s} {row['dataset']:11s} seed {int(row['seed'])}: "
                f"test AUROC {100 * row['test_auroc']:.1f}  ({row['wall_seconds']:.1f} s)",
                flush=True,
            )
            (out / "table.md").write_text(_table(rows))
    (out / "table.md").write_text(_table(rows))
    print(_table(rows))


if __name__ == "__main__":
    main()
