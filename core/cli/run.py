"""``sadkit run``: one experiment, from the command line or from a spec file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from ..errors import SpecError
from .common import ProgressCallback, err_console, handle_errors, json_safe, parse_pairs

if TYPE_CHECKING:  # the command imports them when it runs, so that --help stays light
    from ..experiment import ExperimentResult, ExperimentSpec


def run_command(
    target: str = typer.Argument(..., help="A detector name (e.g. deepsad), or a spec file PROJECT.yaml."),
    dataset: str | None = typer.Argument(None, help="A dataset name (e.g. odds); not with a spec file."),
    param: list[str] = typer.Option(None, "--param", "-p", help="Detector parameter key=value (repeatable)."),
    data: list[str] = typer.Option(None, "--data", "-d", help="Dataset parameter key=value (repeatable)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed for data, weights and batches; -1 draws one."),
    device: str | None = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N."),
    tracking_uri: str | None = typer.Option(
        None, "--tracking-uri", help="MLflow tracking URI \\[default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db]."
    ),
    experiment: str | None = typer.Option(None, "--experiment", help="MLflow experiment name \\[default: sadkit]."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for torch \\[default: all cores]."),
    no_model: bool = typer.Option(False, "--no-model", help="Do not log the fitted detector as an MLflow model."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with the results on stdout."),
) -> None:
    """Run one experiment and track it in MLflow.

    Examples:

      sadkit run deepsad odds --data name=cardio --data ratio_known_outlier=0.01 --seed 0

      sadkit run projects/quick.yaml --seed 3
    """
    with handle_errors(json_errors=as_json):
        from ..tracking.figures import background_figures, start_helper

        start_helper()  # it imports matplotlib while this process imports torch, and draws while the model is logged
        from ..experiment import run_experiment

        spec = _spec(target, dataset, param, data)
        if seed is not None:
            spec.seed = seed
        if device is not None:
            spec.device = device
        if tracking_uri is not None:
            spec.tracking_uri = tracking_uri
        if experiment is not None:
            spec.experiment = experiment
        if threads is not None:
            spec.threads = threads
        if no_model:
            spec.log_model = False
        with ProgressCallback(enabled=not as_json) as progress, background_figures():
            result = run_experiment(spec, callbacks=[progress])
        if as_json:
            typer.echo(json.dumps(json_safe(result.as_dict())))
        else:
            _print_summary(result, spec)


def _spec(target: str, dataset: str | None, param: list[str] | None, data: list[str] | None) -> ExperimentSpec:
    from ..experiment import ExperimentSpec

    if target.endswith((".yaml", ".yml")) or Path(target).is_file():
        if dataset is not None:
            raise SpecError(f"give either a spec file or DETECTOR DATASET, not both ({target} {dataset})")
        spec = ExperimentSpec.from_yaml(target)
        spec.params.update(parse_pairs(param, "--param"))
        spec.data.update(parse_pairs(data, "--data"))
        return spec
    if dataset is None:
        raise SpecError(f"missing DATASET: sadkit run {target} DATASET (e.g. odds), or a spec file")
    return ExperimentSpec(
        detector=target, dataset=dataset, params=parse_pairs(param, "--param"), data=parse_pairs(data, "--data")
    )


def _print_summary(result: ExperimentResult, spec: ExperimentSpec) -> None:
    from ..tracking import resolve_tracking_uri

    table = Table(title=f"{result.detector} on {result.dataset} {result.data.get('name', '')} (seed {result.seed})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("test_auroc", "test_auprc", "val_auroc", "val_auprc"):
        value = getattr(result, key)
        table.add_row(key, "n/a" if math.isnan(value) else f"{value:.4f}")
    table.add_row("train seconds", f"{result.train_seconds:.1f}")
    if result.pretrain_seconds:
        table.add_row("pretrain seconds", f"{result.pretrain_seconds:.1f}")
    table.add_row("train / val / test", f"{result.n_train} / {result.n_val} / {result.n_test}")
    Console().print(table)
    uri = resolve_tracking_uri(spec.tracking_uri)
    err_console.print(f"MLflow run {result.run_id} in {uri}", highlight=False)
    if uri.startswith("sqlite:"):
        err_console.print(f"  see it with: mlflow ui --backend-store-uri {uri}", highlight=False)
    if result.model_uri:
        err_console.print(f"  model: {result.model_uri}", highlight=False)
