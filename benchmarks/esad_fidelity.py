"""ESAD's open choices measured (issue 17): which loss and score variant gives what on MNIST.

Each job trains ESAD on MNIST scenario (i) (one normal class, gamma_l = 0.05 from one known anomaly
class drawn by the seed, gamma_p = 0 unless ``--pollution``: the setting of
``projects/mnist_evidence_paper.yaml``, so Deep SAD's numbers there are the comparison) and records
the test AUROC of the detector's own score and of every score the same network can give: the summed
and the mean squared reconstruction error, the squared and the plain norm of the second code, and the
two sums ours and the Julia package's score use::

    python benchmarks/esad_fidelity.py --variants v1 paper shared --classes 0 --epochs 10 \\
        --out results/esad_fidelity
    python benchmarks/esad_fidelity.py --variants v1 --classes 0 1 2 3 4 --epochs 15 --out results/esad_fidelity

No MLflow: every job is a plain fit and score (so it runs wherever torch and sadkit are installed),
one process per job (``--workers``), one torch thread each, rows appended to ``<out>/runs.csv``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from _rows import append_rows, read_rows

#: ESAD parameters of each variant (everything else: the detector's defaults)
VARIANTS = {
    # sadkit before issue 17: squared norms, anomalies' reconstruction inverted, score = summed rec + ||z_hat||^2
    "v1": {"norm": "squared", "anomaly_reconstruction": "inverse", "score_reconstruction": "sum"},
    # the paper's terms as the public Julia implementation writes them, with the paper's two encoders
    "paper": {"norm": "euclidean", "anomaly_reconstruction": "keep", "score_reconstruction": "mean"},
    # the same with one encoder used twice (the Julia package's Chain(encoder, decoder, encoder))
    "shared": {
        "norm": "euclidean",
        "anomaly_reconstruction": "keep",
        "score_reconstruction": "mean",
        "shared_encoder": True,
    },
}
FIELDS = [
    "variant",
    "normal_class",
    "ratio_pollution",
    "seed",
    "epochs",
    "device",
    "auroc_score",
    "auroc_rec_sum",
    "auroc_rec_mean",
    "auroc_lat_sq",
    "auroc_lat_norm",
    "auroc_rec_sum_lat_sq",
    "auroc_rec_mean_lat_norm",
    "final_loss",
    "train_seconds",
    "n_train",
    "params",
]


def job(
    variant: str, normal_class: int, pollution: float, seed: int, epochs: int, device: str, root: str | None
) -> dict:
    import numpy as np
    import torch

    from sadkit import auroc, create_dataset, create_detector

    torch.set_num_threads(1)
    data = {"normal_class": normal_class, "ratio_known_outlier": 0.05, "ratio_pollution": pollution}
    if root:
        data["root"] = root
    train, _, test = create_dataset("mnist", seed=seed, **data).load()
    milestone = max(1, epochs // 3)
    params = {
        **VARIANTS[variant],
        "net_name": "mnist_lenet",
        "n_epochs": epochs,
        "lr_milestones": [milestone],
        "device": device,
        "seed": seed,
    }
    detector = create_detector("esad", **params)
    start = time.perf_counter()
    detector.fit(train.X, semi_y=train.semi_y)
    seconds = time.perf_counter() - start
    parts = detector.score_parts(test.X)
    rec, lat = parts["reconstruction"], parts["latent"]
    n_input = int(np.prod(test.X.shape[1:]))
    y = np.asarray(test.y)
    scores = {
        "auroc_score": detector.decision_function(test.X),
        "auroc_rec_sum": rec,
        "auroc_rec_mean": rec / n_input,
        "auroc_lat_sq": lat,
        "auroc_lat_norm": np.sqrt(lat),
        "auroc_rec_sum_lat_sq": rec + lat,
        "auroc_rec_mean_lat_norm": rec / n_input + np.sqrt(lat),
    }
    row = {k: round(100 * auroc(y, v), 2) for k, v in scores.items()}
    row.update(
        variant=variant,
        normal_class=normal_class,
        ratio_pollution=pollution,
        seed=seed,
        epochs=epochs,
        device=device,
        final_loss=round(float(detector.train_losses_[-1]), 5) if detector.train_losses_ else None,
        train_seconds=round(seconds, 1),
        n_train=len(train.X),
        params=json.dumps(VARIANTS[variant], sort_keys=True),
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["paper"], choices=sorted(VARIANTS))
    parser.add_argument("--classes", nargs="+", type=int, default=list(range(10)))
    parser.add_argument("--pollution", type=float, default=0.0, help="gamma_p (the paper's scenario i: 0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--root", default=os.environ.get("SADKIT_DATA"))
    parser.add_argument("--out", type=Path, default=Path("results/esad_fidelity"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "runs.csv"
    done = {
        (r["variant"], int(r["normal_class"]), float(r["ratio_pollution"]), int(r["epochs"])) for r in read_rows(path)
    }
    jobs = [
        (v, c, args.pollution, args.seed, args.epochs, args.device, args.root)
        for c in args.classes
        for v in args.variants
        if (v, c, args.pollution, args.epochs) not in done
    ]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for future in as_completed([pool.submit(job, *j) for j in jobs]):
            try:
                row = future.result()
            except Exception as err:  # one failed job must not lose the others' rows
                print(f"job failed: {type(err).__name__}: {err}", flush=True)
                continue
            append_rows(path, [row], FIELDS)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
