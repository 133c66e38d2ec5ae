"""``sadkit active``: active anomaly detection, query by query, with an expert (or the ground truth)."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from .common import err_console, handle_errors, json_safe, parse_pairs

if TYPE_CHECKING:  # the command imports it when it runs, so that --help stays light
    from ..active import ActiveResult


def _ask(sample_id: int, description: str) -> int:
    """The prompt oracle's person: y/n (or 1/0) on the terminal."""
    while True:
        answer = typer.prompt(f"{description}\n  is sample {sample_id} an anomaly? [y/n]", err=True).strip().lower()
        if answer in ("y", "yes", "1"):
            return 1
        if answer in ("n", "no", "0"):
            return 0
        err_console.print("answer y (anomaly) or n (normal)")


def active_command(
    detector: str = typer.Argument(..., help="A detector with a per-sample signal (e.g. esad, deepsad)."),
    dataset: str = typer.Argument(..., help="A dataset name (e.g. odds)."),
    budget: int = typer.Option(..., "--budget", help="Samples to query in all (at most the unlabeled pool)."),
    per_round: int = typer.Option(..., "--per-round", help="Samples queried per round."),
    oracle: str = typer.Option(
        "ground-truth", "--oracle", help="Who labels: ground-truth, prompt (you, y/n) or csv:PATH (columns id,label)."
    ),
    strategy: str = typer.Option("top", "--strategy", help="Which samples to query: top, uncertain, random."),
    param: list[str] = typer.Option(None, "--param", "-p", help="Detector parameter key=value (repeatable)."),
    data: list[str] = typer.Option(None, "--data", "-d", help="Dataset parameter key=value (repeatable)."),
    layer_param: list[str] = typer.Option(
        None, "--layer-param", "-l", help="Active-layer parameter key=value (l2, prior, refit_base; repeatable)."
    ),
    layer: str = typer.Option("active", "--layer", help="The active-layer detector plugin."),
    seed: int | None = typer.Option(0, "--seed", help="Seed for data, weights and random queries; -1 draws one."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    tracking_uri: str | None = typer.Option(
        None, "--tracking-uri", help="MLflow tracking URI \\[default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db]."
    ),
    experiment: str | None = typer.Option(None, "--experiment", help="MLflow experiment name \\[default: sadkit]."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for torch \\[default: all cores]."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with the curve on stdout."),
) -> None:
    """Query labels round by round and track test AUROC and anomalies found against queries.

    Examples:

      sadkit active esad odds -d name=thyroid --budget 100 --per-round 10 --strategy top

      sadkit active esad odds -d name=cardio --budget 20 --per-round 5 --oracle prompt

      sadkit active deepsad odds -d name=cardio --budget 50 --per-round 10 --oracle csv:labels.csv --json
    """
    with handle_errors(json_errors=as_json):
        from ..active import ActiveSpec, run_active

        spec = ActiveSpec(
            detector=detector,
            dataset=dataset,
            budget=budget,
            per_round=per_round,
            oracle=oracle,
            strategy=strategy,
            params=parse_pairs(param, "--param"),
            data=parse_pairs(data, "--data"),
            layer=layer,
            layer_params=parse_pairs(layer_param, "--layer-param"),
            seed=seed,
            device=device,
            experiment=experiment,
            tracking_uri=tracking_uri,
            threads=threads,
        )

        def progress(record: dict) -> None:
            if not as_json:
                err_console.print(
                    f"round {record['round']}: {record['queried']} queried, {record['anomalies_found']} anomalies"
                    f" found, test AUROC {record['test_auroc']:.4f}",
                    highlight=False,
                )

        result = run_active(spec, ask=_ask, on_round=progress)
        if as_json:
            typer.echo(json.dumps(json_safe(result.as_dict())))
        else:
            _print_summary(result)


def _print_summary(result: ActiveResult) -> None:
    table = Table(
        title=f"active {result.detector} on {result.dataset} {result.data.get('name', '')}: {result.strategy} queries,"
        f" {result.oracle} oracle (seed {result.seed})"
    )
    for column in ("queried", "anomalies found", "test AUROC", "test AUPRC"):
        table.add_column(column, justify="right")
    for r in result.rounds:
        auc = "n/a" if math.isnan(r["test_auroc"]) else f"{r['test_auroc']:.4f}"
        prc = "n/a" if math.isnan(r["test_auprc"]) else f"{r['test_auprc']:.4f}"
        table.add_row(str(r["queried"]), str(r["anomalies_found"]), auc, prc)
    Console().print(table)
    rate = result.pool_anomaly_rate
    err_console.print(
        f"pool: {result.pool_size} unlabeled training samples, {100 * rate:.2f}% anomalies" if rate is not None else "",
        highlight=False,
    )
    err_console.print(f"MLflow run {result.run_id}", highlight=False)
