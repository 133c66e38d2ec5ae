"""The README's worked example, run for real: your own table with 5% of its labels, trained, scored from a
file and over HTTP.

1. ODDS thyroid written as CSV files with the original values: ``thyroid.csv`` (70% of the rows, 5% of
   their labels kept, the rest blank, an ``id`` column) and ``holdout.csv`` (the other 30%, labeled);
2. ``sadkit run deepsad table --data path=thyroid.csv --data id_column=id --seed 0``;
3. ``sadkit score <model> holdout.csv --out scores.csv``;
4. ``mlflow models serve -m <model>`` and a ``POST /invocations`` with the hold-out rows (``curl``'s
   request, sent from Python);
5. the AUROC on the hold-out rows, the threshold, precision and recall at it, and whether the file's
   scores and the server's are the same.

    python benchmarks/own_data_example.py --out results/own_data
    python benchmarks/own_data_example.py --write-files .     # only step 1: the two CSV files, here

Writes ``summary.json`` and ``transcript.md`` (each command and the end of its output) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def write_files(root: Path, folder: Path, seed: int = 0, label_share: float = 0.05) -> None:
    import pandas as pd
    from sklearn.model_selection import train_test_split

    from sadkit.plugins.datasets.odds import read_mat

    X, y = read_mat(root / "odds" / "thyroid.mat")
    y = np.asarray(y).reshape(-1).astype(int)
    frame = pd.DataFrame(X, columns=[f"v{i + 1}" for i in range(X.shape[1])])
    frame.insert(0, "id", [f"p{i:05d}" for i in range(len(frame))])
    train, holdout = train_test_split(np.arange(len(frame)), test_size=0.3, stratify=y, random_state=seed)
    keep = np.random.default_rng(seed).random(len(train)) < label_share
    train_frame = frame.iloc[train].assign(label=np.where(keep, y[train], np.nan))
    train_frame.to_csv(folder / "thyroid.csv", index=False)
    frame.iloc[holdout].assign(label=y[holdout]).to_csv(folder / "holdout.csv", index=False)


def run(cmd: list[str], transcript: list[str], cwd: Path, env: dict) -> str:
    shown = " ".join(cmd).replace(str(BIN) + "/", "")
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    transcript.append(f"$ {shown}\n{(done.stdout + done.stderr).strip()[-2500:]}\n")
    if done.returncode != 0:
        raise SystemExit(f"{shown} failed:\n{done.stderr}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    from sadkit import auroc

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root", type=Path, default=Path(os.environ.get("SADKIT_DATA") or REPO.parent / "shared" / "data")
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--write-files", type=Path, default=None, help="write thyroid.csv and holdout.csv there, stop")
    args = parser.parse_args(argv)
    if args.write_files is not None:
        write_files(args.root, args.write_files)
        print(f"wrote {args.write_files / 'thyroid.csv'} and {args.write_files / 'holdout.csv'}")
        return 0
    folder = Path(tempfile.mkdtemp(prefix="own-data-"))
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # `mlflow models serve` runs the venv's uvicorn
    }
    transcript: list[str] = []
    write_files(args.root, folder)
    out = run([str(BIN / "sadkit"), "run", "deepsad", "table", "--data", "path=thyroid.csv", "--data",
               "id_column=id", "--seed", "0", "--json"], transcript, folder, env)  # fmt: skip
    result = json.loads(out)
    model = result["model_uri"]
    run([str(BIN / "sadkit"), "score", model, "holdout.csv", "--out", "scores.csv"], transcript, folder, env)
    scores = pd.read_csv(folder / "scores.csv", float_precision="round_trip")
    holdout = pd.read_csv(folder / "holdout.csv")

    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "models", "serve", "-m", model, "--env-manager", "local", "--host", "127.0.0.1",
         "--port", str(port)],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        for _ in range(600):
            if server.poll() is not None:
                raise SystemExit(f"mlflow models serve stopped:\n{server.stdout.read()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        rows = holdout.drop(columns=["label"])
        body = json.dumps(
            {"dataframe_split": json.loads(rows.to_json(orient="split", index=False, double_precision=15))}
        )
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=body.encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            served = pd.DataFrame(json.loads(response.read())["predictions"])
        first = json.dumps(
            {"dataframe_split": {"columns": list(rows.columns), "data": rows.iloc[:1].to_numpy().tolist()}}
        )
        curl = f"$ curl -s http://127.0.0.1:{port}/invocations -H 'Content-Type: application/json' -d '{first}'"
        transcript.append(f"{curl}\n{json.dumps({'predictions': served.head(1).to_dict(orient='records')})}\n")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    y = holdout["label"].to_numpy()
    flagged = scores["label"].to_numpy() == 1
    tp = int((flagged & (y == 1)).sum())
    summary = {
        "model_uri": model,
        "run_id": result["run_id"],
        "n_train_rows": int(result["n_train"] + result["n_val"]),
        "n_labels_kept": int(pd.read_csv(folder / "thyroid.csv")["label"].notna().sum()),
        "holdout_rows": int(len(holdout)),
        "holdout_anomalies": int((y == 1).sum()),
        "holdout_auroc": auroc(y, scores["score"].to_numpy()),
        "threshold": result["threshold"],
        "flagged": int(flagged.sum()),
        "precision": tp / max(int(flagged.sum()), 1),
        "recall": tp / max(int((y == 1).sum()), 1),
        "served_equals_file": bool(np.array_equal(served["score"].to_numpy(), scores["score"].to_numpy())),
        "max_abs_difference": float(np.abs(served["score"].to_numpy() - scores["score"].to_numpy()).max()),
        "training_params": {
            k: result["params"][k] for k in ("n_epochs", "lr", "lr_milestones", "ae_n_epochs", "ae_lr")
        },
    }
    print(json.dumps(summary, indent=2))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        (args.out / "transcript.md").write_text("\n".join(transcript))
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
