"""Active learning must not unlearn (issue 17): the active loop on thyroid and cardio, every round measured.

Each run is ``sadkit.active.run_active`` (the code behind ``sadkit active``, tracked in MLflow): the
ground-truth oracle, no labels at the start (gamma_l = 0), the pool polluted with the dataset's own
anomaly share (thyroid 0.025, cardio 0.096), ``--budget`` queries in rounds of ``--per-round``::

    python benchmarks/active_fidelity.py --bases deepsad deepsvdd --seeds 0 1 2 3 4 --out results/active

Writes ``<out>/fidelity_runs.csv`` (one row per run and round; resumable), ``<out>/fidelity.md`` (the
target's checks per base, dataset and strategy: the worst drop below round 0 over seeds and rounds, the
seeds that end above round 0, anomalies found against random's expectation ``budget x pool share``)
and ``<out>/fidelity_curves.png``. ``--layer-params`` (JSON) and ``--label`` run another layer setting
(e.g. the first one: ``{"score_weight": "free", "signal_weights": "free", "refit_base": false}``);
``--show`` limits the table and the figure to some settings. In ``results/active``: ``now`` (the
defaults), ``before`` (the defaults before Deep SVDD was fine-tuned: its layer only re-weighed the
score's terms) and ``fine-tune lr 1e-4 x50`` (both bases fine-tuned at the fit's first learning rate).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from _rows import append_rows, read_rows

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

POLLUTION = {"thyroid": 0.025, "cardio": 0.096}
FIELDS = ["label", "base", "dataset", "strategy", "seed", "round", "queried", "found", "test_auroc", "pool_rate"]


def run(label: str, base: str, name: str, strategy: str, seed: int, args: argparse.Namespace) -> list[dict]:
    from sadkit.active import ActiveSpec, run_active

    spec = ActiveSpec(
        detector=base,
        dataset="odds",
        budget=args.budget,
        per_round=args.per_round,
        strategy=strategy,
        params={"device": "cpu"},
        data={"name": name, "ratio_pollution": POLLUTION[name]},
        layer_params=json.loads(args.layer_params),
        seed=seed,
        device="cpu",
        threads=1,
        experiment="issue17-active",
        tracking_uri=f"sqlite:///{(args.out / 'mlflow.db').resolve()}",
    )
    result = run_active(spec)
    return [
        {
            "label": label,
            "base": base,
            "dataset": name,
            "strategy": strategy,
            "seed": seed,
            "round": r["round"],
            "queried": r["queried"],
            "found": r["anomalies_found"],
            "test_auroc": round(100 * r["test_auroc"], 2),
            "pool_rate": result.pool_anomaly_rate,
        }
        for r in result.rounds
    ]


def report(path: Path, out: Path, labels: list[str] | None = None) -> None:
    rows = [r for r in read_rows(path) if not labels or r["label"] in labels]
    keys = list(dict.fromkeys((r["label"], r["base"], r["dataset"], r["strategy"]) for r in rows))
    lines = [
        "Active loop, ground-truth oracle, test AUROC % (mean over seeds) after each round; `mean drop`: the"
        " largest fall of that mean curve below its round 0; `worst drop`: the largest fall below round 0 of"
        " any one seed in any round; `end > start`: seeds whose last round is above round 0; found: anomalies"
        " found (mean), against random's expectation (budget x pool share).",
        "",
        "| setting | base | dataset | strategy | seeds | AUROC by queries | mean drop | worst drop | end > start"
        " | found | random | found / random |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in keys:
        mine = [r for r in rows if (r["label"], r["base"], r["dataset"], r["strategy"]) == key]
        seeds = sorted({int(r["seed"]) for r in mine})
        curves = {s: [r for r in mine if int(r["seed"]) == s] for s in seeds}
        curves = {s: sorted(c, key=lambda r: int(r["round"])) for s, c in curves.items()}
        by_round = np.array([[float(r["test_auroc"]) for r in c] for c in curves.values()])
        queried = [int(r["queried"]) for r in next(iter(curves.values()))]
        drop = float(np.max(by_round[:, :1] - by_round))
        mean_curve = by_round.mean(axis=0)
        mean_drop = float(np.max(mean_curve[0] - mean_curve))
        above = int(np.sum(by_round[:, -1] > by_round[:, 0]))
        found = float(np.mean([int(c[-1]["found"]) for c in curves.values()]))
        expected = float(np.mean([float(c[-1]["pool_rate"]) * queried[-1] for c in curves.values()]))
        curve = ", ".join(f"{q}: {v:.1f}" for q, v in zip(queried, mean_curve, strict=True))
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {len(seeds)} | {curve} | {mean_drop:.1f} | {drop:.1f}"
            f" | {above}/{len(seeds)}"
            f" | {found:.1f} | {expected:.1f} | {found / expected:.1f}x |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    plot(rows, keys, out.with_name(out.stem + "_curves.png"))


def plot(rows: list[dict], keys: list[tuple], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(k[1], k[2]) for k in keys})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, (base, name) in zip(axes[0], panels, strict=True):
        for key in [k for k in keys if (k[1], k[2]) == (base, name)]:
            mine = [r for r in rows if (r["label"], r["base"], r["dataset"], r["strategy"]) == key]
            queried = sorted({int(r["queried"]) for r in mine})
            means = [np.mean([float(r["test_auroc"]) for r in mine if int(r["queried"]) == q]) for q in queried]
            ax.plot(queried, means, marker="o", label=f"{key[3]} ({key[0]})")
        ax.set_title(f"{base} on {name}")
        ax.set_xlabel("queries")
        ax.set_ylabel("test AUROC %")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bases", nargs="+", default=["deepsad", "deepsvdd"])
    parser.add_argument("--datasets", nargs="+", default=["thyroid", "cardio"])
    parser.add_argument("--strategies", nargs="+", default=["top", "uncertain"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--layer-params", default="{}")
    parser.add_argument("--label", default="now", help="the setting's name in the CSV and the table")
    parser.add_argument("--show", nargs="*", help="the settings (labels) the table and figure show (default: all)")
    parser.add_argument("--out", type=Path, default=Path("results/active"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "fidelity_runs.csv"
    done = {(r["label"], r["base"], r["dataset"], r["strategy"], int(r["seed"])) for r in read_rows(path)}
    for seed in args.seeds:
        for name in args.datasets:
            for base in args.bases:
                for strategy in args.strategies:
                    if (args.label, base, name, strategy, seed) in done:
                        continue
                    rows = run(args.label, base, name, strategy, seed, args)
                    append_rows(path, rows, FIELDS)
                    print(args.label, base, name, strategy, seed, [r["test_auroc"] for r in rows], flush=True)
    report(path, args.out / "fidelity", args.show)


if __name__ == "__main__":
    main()
