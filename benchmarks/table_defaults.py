"""Do the training defaults for your own tables work? Deep SAD with the step-budget defaults
(:mod:`sadkit.defaults`) against the paper's schedule and against Isolation Forest, on small tables.

The tables are subsamples of the six paper ODDS sets and of the synthetic dataset, written as CSV files
with their original (unscaled) values, the way a user would bring them: ``n`` training rows (100, 300,
1,000) of which 5% keep their label and the rest are blank, and a disjoint test file of up to 1,000
labeled rows. Each runs through the ``table`` dataset (``sadkit run deepsad table ...`` in Python). The
small ODDS tables the paper did not use (``--small-odds``: lympho, glass, vertebral, wbc; 80 to 200
training rows) run through the ``odds`` dataset and its protocol (gamma_l = 0.03), which gives them the
same defaults. Three methods:

* ``deepsad (table defaults)``: no training parameter given, so the table's defaults apply;
* ``deepsad (paper schedule)``: the paper's 150 + 150 epochs at lr 1e-4 with the drop after 50;
* ``iforest``: Isolation Forest with its defaults.

    python benchmarks/table_defaults.py --out results/table_defaults            # all sizes, 3 seeds
    python benchmarks/table_defaults.py --sizes 100 --seeds 0 --datasets thyroid  # a quick look

It writes ``runs.csv`` (one row per run) and ``table.md`` (mean test AUROC per dataset and size).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PAPER_SETS = ("arrhythmia", "cardio", "satellite", "satimage-2", "shuttle", "thyroid")
SMALL_ODDS = ("lympho", "glass", "vertebral", "wbc")
PAPER_SCHEDULE = {
    "n_epochs": 150, "ae_n_epochs": 150, "lr": 1e-4, "ae_lr": 1e-4, "lr_milestones": [50], "ae_lr_milestones": [50],
}  # fmt: skip
METHODS = {
    "deepsad (table defaults)": ("deepsad", {}),
    "deepsad (paper schedule)": ("deepsad", PAPER_SCHEDULE),
    "iforest": ("iforest", {}),
}


def raw_table(name: str, root: Path) -> tuple[np.ndarray, np.ndarray]:
    """The whole table with its original values: an ODDS file, or the synthetic dataset's draw."""
    if name == "synthetic":
        from sadkit import create_dataset

        X, y, _ = create_dataset("synthetic", n_samples=4000, seed=0)._read()
        return X, y
    from sadkit.plugins.datasets.odds import read_mat

    X, y = read_mat(root / "odds" / f"{name}.mat")
    return np.asarray(X, dtype=np.float64), np.asarray(y).reshape(-1).astype(int)


def write_files(X, y, n: int, seed: int, folder: Path, label_share: float = 0.05) -> tuple[Path, Path]:
    """A stratified training sample of ``n`` rows with ``label_share`` of its labels kept, and a disjoint
    labeled test file of up to 1,000 rows."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(seed)
    rows = np.arange(len(X))
    train_rows, rest = train_test_split(rows, train_size=n, stratify=y, random_state=seed)
    test_rows = (
        rest if len(rest) <= 1000 else train_test_split(rest, train_size=1000, stratify=y[rest], random_state=seed)[0]
    )
    columns = [f"f{i}" for i in range(X.shape[1])]
    train = pd.DataFrame(X[train_rows], columns=columns)
    keep = rng.random(n) < label_share
    train["label"] = np.where(keep, y[train_rows], np.nan)
    test = pd.DataFrame(X[test_rows], columns=columns).assign(label=y[test_rows])
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    return folder / "train.csv", folder / "test.csv"


def run_one(method: str, train: Path, test: Path, seed: int, uri: str) -> dict:
    from sadkit.experiment import ExperimentSpec, run_experiment

    detector, params = METHODS[method]
    spec = ExperimentSpec(
        detector=detector, dataset="table", params=dict(params), data={"path": str(train), "test_path": str(test)},
        seed=seed, threads=1, tracking_uri=uri, experiment="table-defaults", log_model=False,
    )  # fmt: skip
    started = time.perf_counter()
    result = run_experiment(spec)
    return {
        "test_auroc": result.test_auroc,
        "seconds": time.perf_counter() - started,
        "n_epochs": result.params.get("n_epochs", ""),
        "lr": result.params.get("lr", ""),
    }


def run_small_odds(method: str, name: str, root: Path, seed: int, uri: str) -> dict:
    """An ODDS table the paper did not use, under the ODDS protocol (gamma_l = 0.03)."""
    from sadkit.experiment import ExperimentSpec, run_experiment

    detector, params = METHODS[method]
    spec = ExperimentSpec(
        detector=detector, dataset="odds", params=dict(params),
        data={"name": name, "root": str(root), "ratio_known_outlier": 0.03},
        seed=seed, threads=1, tracking_uri=uri, experiment="table-defaults", log_model=False,
    )  # fmt: skip
    started = time.perf_counter()
    try:
        result = run_experiment(spec)
    except Exception as err:  # noqa: BLE001 - a failed cell is reported, the rest go on
        return {"test_auroc": math.nan, "seconds": math.nan, "n_train": 0, "error": f"{type(err).__name__}: {err}"}
    return {"test_auroc": result.test_auroc, "seconds": time.perf_counter() - started, "n_train": result.n_train,
            "n_epochs": result.params.get("n_epochs", ""), "lr": result.params.get("lr", "")}  # fmt: skip


def summarise(rows: list[dict], sizes: list[int]) -> str:
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    lines = [
        "Test AUROC % (mean ± std over seeds); 5% of the training labels kept, a disjoint labeled test file.",
        "",
        "| dataset | rows | " + " | ".join(METHODS) + " |",
        "|---|---:|" + "---:|" * len(METHODS),
    ]
    for dataset in datasets:
        for n in (n for n in sizes if any(r["dataset"] == dataset and r["n"] == n for r in rows)):
            cells = []
            for method in METHODS:
                values = [100 * r["test_auroc"] for r in rows if r["dataset"] == dataset and r["n"] == n
                          and r["method"] == method and not math.isnan(r["test_auroc"])]  # fmt: skip
                if not values:
                    cells.append("n/a")
                    continue
                std = statistics.stdev(values) if len(values) > 1 else 0.0
                cells.append(f"{statistics.mean(values):.1f} ± {std:.1f}")
            lines.append(f"| {dataset} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root", type=Path, default=Path(os.environ.get("SADKIT_DATA") or REPO.parent / "shared" / "data")
    )
    parser.add_argument("--datasets", default=",".join([*PAPER_SETS, "synthetic"]))
    parser.add_argument("--sizes", default="100,300,1000")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--small-odds", default=",".join(SMALL_ODDS), help="ODDS tables run with their protocol")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        os.chdir(tmp)
        for dataset in args.datasets.split(","):
            X, y = raw_table(dataset, args.root)
            for n in (n for n in sizes if n <= 0.7 * len(X)):  # leave rows for the test file
                for seed in seeds:
                    folder = Path(tmp) / f"{dataset}-{n}-{seed}"
                    folder.mkdir()
                    train, test = write_files(X, y, n, seed, folder)
                    for method in METHODS:
                        try:
                            out = run_one(method, train, test, seed, uri)
                        except Exception as err:  # noqa: BLE001 - a failed cell is reported, the rest go on
                            out = {"test_auroc": math.nan, "seconds": math.nan, "error": f"{type(err).__name__}: {err}"}
                        rows.append({"dataset": dataset, "n": n, "seed": seed, "method": method, **out})
                        print(f"{dataset:>10} n={n:<5} seed={seed} {method:<26} AUROC {out['test_auroc']:.3f}"
                              f" ({out['seconds']:.1f} s)", file=sys.stderr, flush=True)  # fmt: skip
        for dataset in (d for d in args.small_odds.split(",") if d):
            for seed in seeds:
                for method in METHODS:
                    out = run_small_odds(method, dataset, args.root, seed, uri)
                    rows.append(
                        {"dataset": f"{dataset} (odds)", "n": out.pop("n_train"), "seed": seed, "method": method, **out}
                    )
                    print(
                        f"{dataset:>10} seed={seed} {method:<26} AUROC {out['test_auroc']:.3f}",
                        file=sys.stderr,
                        flush=True,
                    )
    text = summarise(rows, sorted({r["n"] for r in rows}))
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        fields = sorted({k for r in rows for k in r})
        with (args.out / "runs.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        (args.out / "table.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
