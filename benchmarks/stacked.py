"""Stacked training against one-by-one, in one run: the ODDS table and MNIST training throughput.

Part 1, ODDS: the paper's Deep SAD + Deep SVDD table (six datasets x 10 seeds x 2 methods = 120 runs,
gamma_l = 0.01, gamma_p = 0) through ``sadkit reproduce``, once stacked (the default: the 10 seeds of a
cell train as one grouped network) and once ``--no-stack``, each into its own fresh MLflow store. It
reports the wall time of each (everything: data, training, evaluation, tracking) and, per dataset,
method and seed, the two test AUROCs side by side.

Part 2, MNIST: Deep SAD training throughput per model (samples x epochs / second, pretraining and
training) with S = 1, 10, 90 models stacked (normal class 0, known anomaly classes and seeds as in
scenario (i)) against the reference-style pipeline of ``benchmarks/mnist_speed.py`` on the same data.

Run (repository root; data in ../shared/data or $SADKIT_DATA)::

    python benchmarks/stacked.py --out results/stacked                       # paper schedule: 150 + 150 epochs
    python benchmarks/stacked.py --epochs 30 --mnist-sizes 1,10 --out results/stacked
    python benchmarks/stacked.py --device cuda --mnist-only --out results/stacked_gpu   # on a GPU

It prints Markdown tables and writes ``results.json`` and ``table.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

ODDS = ["arrhythmia", "cardio", "satellite", "satimage-2", "shuttle", "thyroid"]


# --------------------------------------------------------------------------------------------------
# part 1: the ODDS table, stacked and one by one
# --------------------------------------------------------------------------------------------------


def odds_spec(args: argparse.Namespace, tracking_uri: str) -> Any:
    from sadkit.reproduce import ReproductionSpec

    schedule = {
        "n_epochs": args.epochs,
        "ae_n_epochs": args.epochs,
        "lr_milestones": [args.epochs // 3],
        "ae_lr_milestones": [args.epochs // 3],
    }
    return ReproductionSpec.from_dict(
        {
            "kind": "reproduction",
            "name": "stacked-benchmark",
            "dataset": "odds",
            "data": {"ratio_known_outlier": 0.01, "ratio_pollution": 0.0},
            "grid": {"name": args.datasets},
            "seeds": args.seeds,
            "paper": {"file": "paper_results.yaml", "table": "odds"},
            "experiment": "stacked-benchmark",
            "device": args.device,
            "threads": args.threads,
            "tracking_uri": tracking_uri,
            "methods": [
                {"label": "Deep SAD", "detector": "deepsad", "params": schedule},
                {"label": "Deep SVDD", "detector": "deepsvdd", "params": schedule},
            ],
        },
        source=REPO / "projects" / "odds_table.yaml",  # the paper file is found beside it
    )


def run_odds(args: argparse.Namespace, stack: bool) -> dict[str, Any]:
    """The table in a fresh process (each way pays its own imports and start-up, as a command would)."""
    import multiprocessing as mp

    context = mp.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_run_odds, (args, stack))


def _run_odds(args: argparse.Namespace, stack: bool) -> dict[str, Any]:
    from sadkit.reproduce import reproduce

    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)  # the store's artifacts go beside it
        try:
            spec = odds_spec(args, f"sqlite:///{tmp}/mlflow.db")
            started, cpu_started = time.perf_counter(), time.process_time()
            summary = reproduce(spec, Path(tmp) / "out", stack=stack)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            with open(Path(tmp) / "out" / "runs.csv", newline="") as f:
                runs = list(csv.DictReader(f))
        finally:
            os.chdir(cwd)
    return {"stack": stack, "wall_seconds": wall, "cpu_seconds": cpu, "n_computed": summary["n_computed"], "runs": runs}


def odds_table(stacked: dict[str, Any], alone: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    def by_key(result: dict[str, Any]) -> dict[tuple[str, str, str], float]:
        return {(r["row"], r["label"], r["seed"]): float(r["test_auroc"]) for r in result["runs"]}

    a, b = by_key(stacked), by_key(alone)
    lines = [
        f"ODDS Deep SAD + Deep SVDD table, {len(a)} runs: stacked {stacked['wall_seconds']:.0f} s wall"
        f" ({stacked['cpu_seconds']:.0f} s CPU), one by one {alone['wall_seconds']:.0f} s wall"
        f" ({alone['cpu_seconds']:.0f} s CPU): **{alone['wall_seconds'] / stacked['wall_seconds']:.2f}x** in wall"
        f" time, {alone['cpu_seconds'] / stacked['cpu_seconds']:.2f}x in CPU time",
        "",
        "| dataset | method | mean AUROC stacked | mean AUROC one by one | difference (points) | max per-seed |",
        "|---|---|---|---|---|---|",
    ]
    cells: dict[str, Any] = {}
    for row, method in sorted({(k[0], k[1]) for k in a}):
        seeds = sorted((k for k in a if k[:2] == (row, method)), key=lambda k: int(k[2]))
        sa, sb = [a[k] for k in seeds], [b[k] for k in seeds]
        diff = 100 * (statistics.mean(sa) - statistics.mean(sb))
        worst = 100 * max(abs(x - y) for x, y in zip(sa, sb, strict=True))
        cells[f"{row}/{method}"] = {"stacked": sa, "alone": sb, "mean_difference_points": diff}
        lines.append(
            f"| {row} | {method} | {100 * statistics.mean(sa):.2f} | {100 * statistics.mean(sb):.2f} |"
            f" {diff:+.2f} | {worst:.2f} |"
        )
    return "\n".join(lines), cells


# --------------------------------------------------------------------------------------------------
# part 2: MNIST training throughput per model
# --------------------------------------------------------------------------------------------------


def mnist_data(args: argparse.Namespace, n_models: int) -> list[tuple[Any, Any]]:
    """``n_models`` training sets of normal class 0: known anomaly class k and seed s, as scenario (i)."""
    from sadkit.plugins.datasets.images import MNIST

    sets = []
    for i in range(n_models):
        ds = MNIST(
            root=args.root,
            normal_class=0,
            known_outlier_class=1 + i % 9,
            ratio_known_outlier=0.01,
            ratio_pollution=0.1,
            val_fraction=0.0,
            seed=i // 9,
        )
        train, _, _ = ds.load()
        sets.append((train.X[: args.mnist_train], train.labels[: args.mnist_train]))
    return sets


def run_mnist_stacked(args: argparse.Namespace, n_models: int) -> dict[str, Any]:
    from mnist_speed import Clock

    from sadkit.plugins.deepsad import stacked
    from sadkit.plugins.deepsad.detector import DeepSAD
    from sadkit.stacked_fit import fit_together
    from sadkit.training import configure_threads, resolve_device

    stacked.STACK_IMAGES_ON_CPU = True  # measure stacking where sadkit would not stack by default
    configure_threads(args.threads)
    device = resolve_device(args.device)
    data = mnist_data(args, n_models)
    detectors = [
        DeepSAD(
            net_name="mnist_lenet",
            n_epochs=args.mnist_epochs,
            ae_n_epochs=args.mnist_epochs,
            lr_milestones=(),
            ae_lr_milestones=(),
            device=str(device),
            seed=i,
        )
        for i in range(n_models)
    ]
    clock = Clock(device)
    fit_together(detectors, data)
    wall, _ = clock.stop()
    samples = sum(len(X) for X, _ in data) * 2 * args.mnist_epochs  # pretraining counts as much as training
    stack = detectors[0].stack_size_
    return {"models": n_models, "wall_seconds": wall, "samples_per_second": samples / wall, "stack": stack}


def run_mnist_reference(args: argparse.Namespace) -> dict[str, Any]:
    """The reference-style pipeline of mnist_speed.py on one model's data (the same subset size)."""
    from mnist_speed import run_reference

    from sadkit import create_network
    from sadkit.plugins.datasets.images import MNIST
    from sadkit.training import configure_threads, resolve_device, seed_everything

    configure_threads(args.threads)
    device = resolve_device(args.device)
    ds = MNIST(root=args.root, normal_class=0, known_outlier_class=1, ratio_known_outlier=0.01, ratio_pollution=0.1,
               val_fraction=0.0, seed=0)  # fmt: skip
    train, _, test = ds.load()
    n = min(args.mnist_train, len(train))
    train = argparse.Namespace(X=train.X[:n], y=train.y[:n], semi_y=train.semi_y[:n])
    seed_everything(0)
    create_network("mnist_lenet", (1, 28, 28))
    ae = create_network("mnist_lenet", (1, 28, 28), autoencoder=True)
    ns = argparse.Namespace(epochs=args.mnist_epochs, lr=1e-4)
    result = run_reference(train, test, ns, device, {"ae": ae.state_dict()})
    seconds = result["times"]["pretrain"][0] + result["times"]["train"][0]
    return {"models": 1, "wall_seconds": seconds, "samples_per_second": n * 2 * args.mnist_epochs / seconds}


def mnist_table(reference: dict[str, Any], stacked: list[dict[str, Any]], device: str) -> str:
    """Throughput of all models together against the reference's one: how many times faster each model trains."""
    lines = [
        f"MNIST Deep SAD training on {device} (samples x epochs / s over all models, pretraining + training):",
        "",
        "| pipeline | models | samples/s | seconds per model | speed per model vs reference |",
        "|---|---|---|---|---|",
        f"| reference-style | 1 | {reference['samples_per_second']:.0f} | {reference['wall_seconds']:.1f} | 1.00x |",
    ]
    for row in stacked:
        lines.append(
            f"| sadkit, {row['models']} stacked | {row['models']} | {row['samples_per_second']:.0f} |"
            f" {row['wall_seconds'] / row['models']:.2f} |"
            f" {row['samples_per_second'] / reference['samples_per_second']:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    default_root = os.environ.get("SADKIT_DATA", str(REPO.parent / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=default_root, help="data root (default: %(default)s)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: every core)")
    parser.add_argument("--epochs", type=int, default=150, help="ODDS: autoencoder epochs = Deep SAD epochs")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--datasets", type=lambda s: s.split(","), default=ODDS)
    parser.add_argument("--mnist-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 10, 90])
    parser.add_argument("--mnist-epochs", type=int, default=2)
    parser.add_argument("--mnist-train", type=int, default=2048, help="training samples per MNIST model")
    parser.add_argument("--mnist-only", action="store_true")
    parser.add_argument("--odds-only", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ["SADKIT_DATA"] = args.root
    results: dict[str, Any] = {"args": {k: v for k, v in vars(args).items() if k != "out"}}
    tables = []
    if not args.mnist_only:
        alone = run_odds(args, stack=False)
        stacked = run_odds(args, stack=True)
        text, cells = odds_table(stacked, alone)
        results["odds"] = {
            "stacked_seconds": stacked["wall_seconds"],
            "alone_seconds": alone["wall_seconds"],
            "stacked_cpu_seconds": stacked["cpu_seconds"],
            "alone_cpu_seconds": alone["cpu_seconds"],
            "cells": cells,
        }
        tables.append(text)
        print(text, flush=True)
    if not args.odds_only:
        reference = run_mnist_reference(args)
        rows = [run_mnist_stacked(args, s) for s in args.mnist_sizes]
        results["mnist"] = {"reference": reference, "stacked": rows}
        text = mnist_table(reference, rows, args.device)
        tables.append(text)
        print(text, flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str))
        (args.out / "table.md").write_text("\n\n".join(tables) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
