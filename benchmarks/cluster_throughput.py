"""Cells per hour of `sadkit reproduce` on a loopback Dask cluster against the local pool, and the write rate of
an MLflow server on PostgreSQL, measured in one run on this machine.

What it does, with one MLflow server (``mlflow server --workers 1``) on a fresh PostgreSQL database that every
configuration logs into (a cluster needs a shared store, so the local runs use it too, to compare like with like):

- for each spec (``projects/odds_quick.yaml``, 8 cells; and ``odds-six``, the same methods and epochs on the six
  datasets of the paper's ODDS table, 24 cells), ``reproduce()`` in four configurations, each into a fresh
  experiment so that every cell is computed: ``local 1`` (this process, ``--workers 1``), ``local 2`` (a pool of
  two spawned processes, ``--workers 2``), ``dask 1`` and ``dask 2`` (``--cluster`` to a ``dask scheduler`` with
  one or two ``dask worker`` processes of one thread, started before the clock starts, fresh for each
  measurement, so their first task pays the imports as a pool's processes do), then ``dask N warm``: the same
  cells again into another experiment on the same workers; the wall time of the call gives cells per hour;
- the HTTP requests one cell makes to the tracking server (counted around ``requests.Session.request`` during the
  ``local 1`` configuration, in this process);
- the server's write rate: ``log_metric`` calls per second from 1 and from 8 client threads, and runs created and
  ended per second from 1 and 8 threads.

Results: ``OUT/cluster_throughput.md`` (tables) and ``OUT/cluster_throughput.json``. Needs PostgreSQL on
127.0.0.1:5432 (user postgres) and the ODDS files (``$SADKIT_DATA`` or ../shared/data).

    python benchmarks/cluster_throughput.py --out results/cluster
    python benchmarks/cluster_throughput.py --specs quick --out /tmp/cluster   # the 8-cell spec only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "tests"))

from loopback import dask_cluster, mlflow_server, postgres_database  # noqa: E402

SIX = ["arrhythmia", "cardio", "satellite", "satimage-2", "shuttle", "thyroid"]
CONFIGS = [("local", 1), ("local", 2), ("dask", 1), ("dask", 2)]


def _spec(name: str, experiment: str, tracking_uri: str) -> Any:
    from sadkit.reproduce import ReproductionSpec

    raw = yaml.safe_load((HERE / "projects" / "odds_quick.yaml").read_text())
    raw["paper"]["file"] = str(HERE / "projects" / "paper_results.yaml")
    if name == "six":
        raw["grid"]["name"] = SIX
        raw["name"] = "odds-six"
    raw["experiment"] = experiment
    raw["tracking_uri"] = tracking_uri
    return ReproductionSpec.from_dict(raw, source=HERE / "projects" / "odds_quick.yaml")


class RequestCounter:
    """Counts the HTTP requests of this process (MLflow's REST client goes through ``requests.Session``)."""

    def __init__(self) -> None:
        import requests

        self.count = 0
        self._session = requests.Session
        self._original = requests.Session.request

    def __enter__(self) -> RequestCounter:
        original = self._original

        def counted(session, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            self.count += 1
            return original(session, *args, **kwargs)

        self._session.request = counted
        return self

    def __exit__(self, *exc: object) -> None:
        self._session.request = self._original


def measure_reproduction(spec_name: str, kind: str, workers: int, url: str, scratch: Path) -> list[dict[str, Any]]:
    from sadkit.reproduce import reproduce

    label = f"{kind}-{workers}"
    spec = _spec(spec_name, f"bench-{spec_name}-{label}-{time.time_ns()}", url)
    out = scratch / f"{spec_name}-{label}"
    row: dict[str, Any] = {"spec": spec.name, "config": f"{kind} {workers}", "cells": len(spec.cells())}
    if kind == "local":
        with RequestCounter() as counter:
            started = time.perf_counter()
            summary = reproduce(spec, out, workers=workers)
            row["wall_seconds"] = time.perf_counter() - started
        if workers == 1:  # the cells ran in this process: their requests were counted
            row["requests_per_cell"] = counter.count / len(spec.cells())
    else:
        data = os.environ.get("SADKIT_DATA") or str(HERE.parent / "shared" / "data")
        with dask_cluster(workers, scratch / f"dask-{label}", env={"SADKIT_DATA": data}) as cluster:
            started = time.perf_counter()
            summary = reproduce(spec, out, cluster=cluster.address)
            row["wall_seconds"] = time.perf_counter() - started
            _finish(row, spec, summary)
            # the same cells again (a new experiment) on the same workers, now that they have imported sadkit
            warm = _spec(spec_name, spec.experiment + "-warm", url)
            started = time.perf_counter()
            summary = reproduce(warm, out.with_name(out.name + "-warm"), cluster=cluster.address)
            rows = [row, {**row, "config": f"{kind} {workers} warm", "wall_seconds": time.perf_counter() - started}]
            _finish(rows[1], warm, summary)
            return rows
    _finish(row, spec, summary)
    return [row]


def _finish(row: dict[str, Any], spec: Any, summary: dict[str, Any]) -> None:
    assert summary["n_computed"] == len(spec.cells()), summary
    row["cells_per_hour"] = 3600 * row["cells"] / row["wall_seconds"]
    row["load_after"] = os.getloadavg()[0]
    print(json.dumps(row), flush=True)


def _in_threads(n_threads: int, work: Any) -> float:
    """Seconds for ``n_threads`` threads to each run ``work(index)``."""
    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def measure_writes(url: str, n_metric: int, n_runs: int) -> list[dict[str, Any]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(url)
    experiment = client.create_experiment(f"write-rate-{time.time_ns()}")
    rows = []
    for n_threads in (1, 8):
        run_ids = [client.create_run(experiment).info.run_id for _ in range(n_threads)]

        def metrics(i: int, run_ids: list[str] = run_ids, each: int = n_metric // n_threads) -> None:
            for step in range(each):
                client.log_metric(run_ids[i], "loss", 1.0 / (step + 1), step=step)

        seconds = _in_threads(n_threads, metrics)
        calls = n_threads * (n_metric // n_threads)
        rows.append({"what": "log_metric", "threads": n_threads, "calls": calls, "per_second": calls / seconds})

        def runs(i: int, each: int = n_runs // n_threads) -> None:
            for _ in range(each):
                run_id = client.create_run(experiment).info.run_id
                client.set_terminated(run_id)

        seconds = _in_threads(n_threads, runs)
        made = n_threads * (n_runs // n_threads)
        rows.append(
            {"what": "create_run + set_terminated", "threads": n_threads, "calls": made, "per_second": made / seconds}
        )
        print(json.dumps(rows[-2:]), flush=True)
    return rows


def write_report(out: Path, rows: list[dict], writes: list[dict], meta: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "cluster_throughput.json").write_text(
        json.dumps({"meta": meta, "reproductions": rows, "writes": writes}, indent=2)
    )
    lines = [
        "# `sadkit reproduce`: local pool against a loopback Dask cluster",
        "",
        f"{meta['machine']}. Every reproduction logs into one MLflow server (`--workers 1`) on PostgreSQL. "
        f"Load average {meta['load_start']:.1f} at the start; {meta['seconds']:.0f} s in all. "
        f"Command: `{meta['command']}`.",
        "",
    ]
    if rows:
        lines += [
            "| spec | cells | configuration | wall time (s) | cells per hour | load after |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['spec']} | {r['cells']} | {r['config']} | {r['wall_seconds']:.1f} | {r['cells_per_hour']:.0f} |"
            f" {r['load_after']:.1f} |"
            for r in rows
        ]
        lines += [
            "",
            "`local 1`: this process; `local 2`: `--workers 2` (spawned pool); `dask N`: `--cluster` to a scheduler"
            " with N workers of one thread each (started before the clock, fresh each time, so the first cells pay the"
            " imports as a pool's processes do); `dask N warm`: the same cells again (a new experiment) on the same"
            " workers.",
            "",
        ]
    per_cell = [r["requests_per_cell"] for r in rows if "requests_per_cell" in r]
    lines += [
        "## The MLflow server's write rate",
        "",
        "| server workers | call | client threads | calls | per second |",
        "|---|---|---|---|---|",
        *[
            f"| {w.get('server_workers', 1)} | {w['what']} | {w['threads']} | {w['calls']} | {w['per_second']:.0f} |"
            for w in writes
        ],
        "",
        "HTTP requests to the server per cell (an `odds_quick` cell, in process): "
        + (", ".join(f"{x:.0f}" for x in per_cell) or "not measured")
        + ".",
    ]
    (out / "cluster_throughput.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "cluster")
    parser.add_argument("--specs", nargs="+", choices=["quick", "six"], default=["quick", "six"])
    parser.add_argument("--metric-calls", type=int, default=800)
    parser.add_argument("--runs", type=int, default=160)
    parser.add_argument("--server-workers", type=int, default=1, help="also measure the writes against this many")
    parser.add_argument("--writes-only", action="store_true", help="measure the server's write rate only")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("SADKIT_DATA", str(HERE.parent / "shared" / "data"))
    started, load_start = time.time(), os.getloadavg()[0]
    scratch = args.out / "scratch"
    rows: list[dict[str, Any]] = []
    with postgres_database() as database, mlflow_server(database, scratch / "server") as url:
        for spec_name in [] if args.writes_only else args.specs:
            for kind, workers in CONFIGS:
                rows += measure_reproduction(spec_name, kind, workers, url, scratch)
        writes = measure_writes(url, args.metric_calls, args.runs)
    if args.server_workers > 1:  # the same calls against a server with more workers, on a fresh database
        with postgres_database() as database, mlflow_server(database, scratch / "server-n", args.server_workers) as url:
            for row in measure_writes(url, args.metric_calls, args.runs):
                writes.append({**row, "server_workers": args.server_workers})
    meta = {
        "machine": f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), Python"
        f" {platform.python_version()}",
        "load_start": load_start,
        "seconds": time.time() - started,
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
    }
    write_report(args.out, rows, writes, meta)
    import shutil

    shutil.rmtree(scratch, ignore_errors=True)
    print((args.out / "cluster_throughput.md").read_text())


if __name__ == "__main__":
    main()
