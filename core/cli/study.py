"""``sadkit study``: an Optuna study of a detector, from the command line or a spec file; and
``sadkit study show NAME`` for the top trials and parameter importances of a study."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import SpecError
from .common import err_console, handle_errors, json_safe, parse_pairs, parse_value

SHOW = "show"


def study_command(
    target: str = typer.Argument(
        ..., metavar="DETECTOR|SPEC.yaml|show", help="A detector name (e.g. deepsad), a study spec file, or `show`."
    ),
    second: str | None = typer.Argument(
        None, metavar="[DATASET|NAME]", help="The dataset (after a detector), or the study name (after `show`)."
    ),
    param: list[str] = typer.Option(
        None, "--param", "-p", help="Fix a detector parameter key=value; it leaves the search space (repeatable)."
    ),
    data: list[str] = typer.Option(None, "--data", "-d", help="Dataset parameter key=value (repeatable)."),
    n_trials: int | None = typer.Option(
        None, "--n-trials", help="Finished trials the study should hold; a rerun runs the missing ones \\[default: 20]."
    ),
    timeout: float | None = typer.Option(None, "--timeout", help="Start no new trial after this many seconds."),
    storage: str | None = typer.Option(
        None,
        "--storage",
        help="Optuna storage: sqlite:///FILE.db, journal:///FILE.log, postgresql://USER@HOST/DB"
        " \\[default: sqlite:///optuna.db].",
    ),
    study_name: str | None = typer.Option(
        None, "--study-name", help="The study; the same name resumes it \\[default: DETECTOR-DATASET-NAME]."
    ),
    sampler: str | None = typer.Option(None, "--sampler", help="tpe, random, cmaes or grid \\[default: tpe]."),
    pruner: str | None = typer.Option(None, "--pruner", help="median, hyperband or none \\[default: median]."),
    n_jobs: int | None = typer.Option(
        None, "--n-jobs", help="Worker processes on this machine \\[default: 1, or one per --devices entry]."
    ),
    devices: str | None = typer.Option(None, "--devices", help="CUDA devices, e.g. 0,1: one per parallel trial."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the sampler \\[default: 0]."),
    seeds: str | None = typer.Option(
        None, "--seeds", help="Experiment seeds, e.g. 0,1,2: the objective is the mean over them \\[default: 0]."
    ),
    metric: str | None = typer.Option(None, "--metric", help="val_auroc or val_auprc \\[default: val_auroc]."),
    device: str | None = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N (without --devices)."),
    threads: int | None = typer.Option(
        None, "--threads", help="CPU threads per worker \\[default: the cores split between the workers]."
    ),
    tracking_uri: str | None = typer.Option(
        None, "--tracking-uri", help="MLflow tracking URI \\[default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db]."
    ),
    experiment: str | None = typer.Option(None, "--experiment", help="MLflow experiment \\[default: the study name]."),
    heartbeat: int | None = typer.Option(
        None,
        "--heartbeat",
        help="Seconds between heartbeats of a trial; 3 missed = a dead worker \\[default: 10].",
    ),
    stack: int | None = typer.Option(
        None,
        "--stack",
        min=1,
        help="Ask Optuna for K trials at a time and train them as one stacked network \\[default: 1].",
    ),
    log_model: bool = typer.Option(False, "--log-model", help="Log every trial's fitted detector as an MLflow model."),
    export_best: Path | None = typer.Option(
        None, "--export-best", help="Write the best parameters as a spec that `sadkit run` accepts."
    ),
    top: int = typer.Option(10, "--top", help="With show: how many of the best trials to list."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Tune a detector with an Optuna study: maximise validation AUROC, track every trial in MLflow.

    Examples:

      sadkit study deepsad odds --data name=thyroid --data ratio_known_outlier=0.01 --n-trials 30

      sadkit study projects/study_thyroid.yaml --n-jobs 2

      sadkit study show deepsad-odds-thyroid --export-best best.yaml
    """
    with handle_errors(json_errors=as_json):
        if target == SHOW:
            given = {
                "--param": param,
                "--data": data,
                "--n-trials": n_trials,
                "--timeout": timeout,
                "--study-name": study_name,
                "--sampler": sampler,
                "--pruner": pruner,
                "--n-jobs": n_jobs,
                "--devices": devices,
                "--seed": seed,
                "--seeds": seeds,
                "--metric": metric,
                "--device": device,
                "--threads": threads,
                "--tracking-uri": tracking_uri,
                "--experiment": experiment,
                "--heartbeat": heartbeat,
                "--stack": stack,
            }
            extra = [k for k, v in given.items() if v]
            if extra:
                raise SpecError(
                    f"sadkit study show takes --storage, --top, --export-best and --json only, not {', '.join(extra)}"
                )
            _show(second, storage, top, export_best, as_json)
            return
        spec = _study_spec(target, second, param, data)
        overrides: dict[str, Any] = {
            "n_trials": n_trials,
            "timeout": timeout,
            "storage": storage,
            "study_name": study_name,
            "sampler": sampler,
            "pruner": pruner,
            "n_jobs": n_jobs,
            "devices": devices,
            "sampler_seed": seed,
            "seeds": seeds,
            "metric": metric,
            "heartbeat": heartbeat,
            "stack": stack,
        }
        if pruner is not None and pruner.strip().startswith("{"):
            overrides["pruner"] = parse_value(pruner)  # {type: median, n_warmup_steps: 20}
        for key, value in overrides.items():
            if value is not None:
                setattr(spec, key, value)
        for key, value in (
            ("device", device),
            ("threads", threads),
            ("tracking_uri", tracking_uri),
            ("experiment", experiment),
        ):
            if value is not None:
                setattr(spec.experiment, key, value)
        if log_model:
            spec.experiment.log_model = True
        spec.validate("")
        result = _run(spec, quiet=as_json)
        exported = None
        if export_best is not None and result.best_trial is not None:
            from ..tuning import export_best as write_best

            exported = str(write_best(result.study_name, export_best, spec.storage))
        if as_json:
            typer.echo(json.dumps(json_safe({**result.as_dict(), "exported": exported})))
        else:
            _print_result(result, spec, exported)
        if result.worker_exit_codes and any(code != 0 for code in result.worker_exit_codes):
            err_console.print(
                f"[yellow]warning:[/] study worker exit codes {result.worker_exit_codes} (see above)", highlight=False
            )


def _study_spec(target: str, dataset: str | None, param: list[str] | None, data: list[str] | None):
    from ..experiment import ExperimentSpec
    from ..tuning import StudySpec

    if target.endswith((".yaml", ".yml")) or Path(target).is_file():
        if dataset is not None:
            raise SpecError(f"give either a spec file or DETECTOR DATASET, not both ({target} {dataset})")
        spec = StudySpec.from_yaml(target)
        spec.experiment.params.update(parse_pairs(param, "--param"))
        spec.experiment.data.update(parse_pairs(data, "--data"))
        return spec
    if dataset is None:
        raise SpecError(
            f"missing DATASET: sadkit study {target} DATASET (e.g. odds), a study spec file, or sadkit study show NAME"
        )
    experiment = ExperimentSpec(
        detector=target,
        dataset=dataset,
        params=parse_pairs(param, "--param"),
        data=parse_pairs(data, "--data"),
        log_model=False,
    )
    return StudySpec(experiment=experiment)


def _run(spec, quiet: bool):  # noqa: ANN001, ANN202
    from ..tuning import run_study

    progress = Progress(
        TextColumn("trials"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet,
    )
    task = progress.add_task("trials", total=spec.n_trials, info="")
    best: list[float] = []

    def on_start(n_finished: int, n_trials: int) -> None:
        progress.update(task, completed=min(n_finished, n_trials))
        progress.start()

    def on_trial(info) -> None:  # noqa: ANN001
        if info.value is not None:
            best.append(info.value)
        progress.update(
            task,
            completed=min(info.n_finished, spec.n_trials),
            info=f"best {spec.metric} {max(best):.4f}" if best else "",
        )
        if not quiet:
            progress.console.print(_trial_line(info, spec.metric), highlight=False)

    try:
        return run_study(spec, on_trial=on_trial, on_start=on_start)
    finally:
        progress.stop()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _trial_line(info, metric: str) -> str:  # noqa: ANN001
    color = {"COMPLETE": "green", "PRUNED": "yellow", "FAILED": "red"}.get(info.state, "white")
    what = f"{metric} {info.value:.4f}" if info.value is not None else escape(info.message or "")
    took = f"{info.seconds:.1f} s" if info.seconds is not None else ""
    params = " ".join(f"{k}={_fmt(v)}" for k, v in info.params.items())
    return f"trial {info.number:>3} [{color}]{info.state:<8}[/] {what}  {took}  [dim]{escape(params)}[/]"


def _print_result(result, spec, exported: str | None) -> None:  # noqa: ANN001
    table = Table(title=f"study {result.study_name}")
    table.add_column("")
    table.add_column("", overflow="fold")
    table.add_row("storage", result.storage)
    table.add_row(
        "trials",
        f"{result.n_trials} finished ({result.n_complete} complete, {result.n_pruned} pruned),"
        f" {result.n_failed} failed; {result.n_run} run now",
    )
    if result.best_value is not None:
        table.add_row(f"best {result.metric}", f"{result.best_value:.4f} (trial {result.best_trial})")
        table.add_row("best parameters", ", ".join(f"{k}={_fmt(v)}" for k, v in result.best_params.items()))
        table.add_row("best trial's MLflow run", str(result.best_run_id))
    table.add_row("study's MLflow run", result.parent_run_id)
    if result.trials_per_hour:
        table.add_row("trials per hour", f"{result.trials_per_hour:.0f} ({result.n_jobs} worker(s))")
    Console().print(table)
    storage = spec.storage or "sqlite:///optuna.db"
    err_console.print(f"  top trials: sadkit study show {result.study_name} --storage {storage}", highlight=False)
    err_console.print(f"  dashboard:  optuna-dashboard {storage}", highlight=False)
    if result.tracking_uri.startswith("sqlite:"):
        err_console.print(f"  MLflow:     mlflow ui --backend-store-uri {result.tracking_uri}", highlight=False)
    if exported:
        err_console.print(f"  best parameters written to {exported}: sadkit run {exported}", highlight=False)


def _show(name: str | None, storage: str | None, top: int, export_best: Path | None, as_json: bool) -> None:
    from ..tuning import describe_storage, list_studies, study_report
    from ..tuning import export_best as write_best

    if name is None:
        names = list_studies(storage)
        if as_json:
            typer.echo(json.dumps({"storage": describe_storage(storage), "studies": names}))
        else:
            Console().print(f"studies in {describe_storage(storage)}: {', '.join(names) or 'none'}", highlight=False)
        return
    report = study_report(name, storage, top=top)
    exported = str(write_best(name, export_best, storage)) if export_best is not None else None
    if as_json:
        typer.echo(json.dumps(json_safe({**report.as_dict(), "exported": exported})))
        return
    console = Console()
    counts = report.counts
    console.print(
        f"study [bold]{escape(name)}[/] in {escape(report.storage)}: {report.detector} on {report.dataset},"
        f" maximising {report.metric}; {counts['COMPLETE']} complete, {counts['PRUNED']} pruned,"
        f" {counts['FAILED']} failed, {counts['RUNNING']} running",
        highlight=False,
    )
    table = Table(title=f"top {len(report.top)} trials")
    for column in ("rank", "trial", str(report.metric or "value"), "seconds", "parameters", "MLflow run"):
        table.add_column(column, overflow="fold")
    for rank, info in enumerate(report.top, 1):
        table.add_row(
            str(rank),
            str(info.number),
            f"{info.value:.4f}" if info.value is not None and math.isfinite(info.value) else "n/a",
            f"{info.seconds:.1f}" if info.seconds is not None else "",
            ", ".join(f"{k}={_fmt(v)}" for k, v in info.params.items()),
            info.run_id or "",
        )
    console.print(table)
    if report.importances:
        imp = Table(title="parameter importances (fANOVA)")
        imp.add_column("parameter")
        imp.add_column("importance", justify="right")
        imp.add_column("")
        for key, value in report.importances.items():
            imp.add_row(key, f"{value:.3f}", "█" * max(1, round(30 * value)) if value > 0 else "")
        console.print(imp)
    else:
        console.print(report.importance_note or "no parameter importances", highlight=False)
    if exported:
        err_console.print(f"best parameters written to {exported}: sadkit run {exported}", highlight=False)
