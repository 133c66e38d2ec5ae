"""After a study: list and load studies, report the top trials and importances, export the best spec."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from ..errors import SadkitError
from ..experiment import ExperimentSpec
from ..serialize import to_json
from ._common import _ATTR, _quiet_optuna
from .results import TrialInfo, _best, _counts, _trial_info
from .storage import describe_storage, open_storage


@dataclass
class StudyReport:
    """A study's standing: counts, best trial, the top trials and the parameter importances."""

    study_name: str
    storage: str
    metric: str | None
    detector: str | None
    dataset: str | None
    counts: dict[str, int]
    best_value: float | None
    best_params: dict[str, Any]
    best_trial: int | None
    best_run_id: str | None
    top: list[TrialInfo]
    importances: dict[str, float] | None
    importance_note: str | None

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["n_trials"] = self.counts.get("COMPLETE", 0) + self.counts.get("PRUNED", 0)
        return out


def list_studies(storage: str | None = None) -> list[str]:
    """The names of the studies in ``storage``."""
    return sorted(optuna.study.get_all_study_names(open_storage(storage, must_exist=True)))


def load_study(name: str, storage: str | None = None) -> Any:
    """An existing study, or a :class:`SadkitError` listing the studies the storage holds."""
    backend = open_storage(storage, must_exist=True)
    try:
        with _quiet_optuna():
            return optuna.load_study(study_name=name, storage=backend)
    except KeyError:
        names = sorted(optuna.study.get_all_study_names(backend))
        raise SadkitError(
            f"no study named {name!r} in {describe_storage(storage)}; it holds: {', '.join(names) or 'no study'}"
        ) from None


def study_report(name: str, storage: str | None = None, top: int = 10) -> StudyReport:
    """The top ``top`` complete trials and the parameter importances (fANOVA) of a study."""
    study = load_study(name, storage)
    trials = study.get_trials(deepcopy=False)
    counts = _counts(trials)
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: -float(t.value))
    best = _best(study)
    importances, note = None, None
    if counts["COMPLETE"] < 2:
        note = f"parameter importances need at least 2 complete trials (the study has {counts['COMPLETE']})"
    elif len({float(t.value) for t in complete}) == 1:
        note = (
            f"parameter importances need trials that differ: all {len(complete)} complete trials have"
            f" {study.user_attrs.get(_ATTR + 'metric', 'value')} {float(complete[0].value):.4f}"
        )
    else:
        try:
            with _quiet_optuna():
                evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
                importances = {
                    k: float(v) for k, v in optuna.importance.get_param_importances(study, evaluator=evaluator).items()
                }
        except (ValueError, RuntimeError, ZeroDivisionError) as err:
            note = f"no parameter importances: {err}"
    spec = study.user_attrs.get(_ATTR + "spec") or {}
    return StudyReport(
        study_name=name,
        storage=describe_storage(storage),
        metric=study.user_attrs.get(_ATTR + "metric"),
        detector=spec.get("detector"),
        dataset=spec.get("dataset"),
        counts=counts,
        best_value=best.value if best else None,
        best_params=to_json(best.user_attrs.get(_ATTR + "params") or best.params) if best else {},
        best_trial=best.number if best else None,
        best_run_id=best.user_attrs.get(_ATTR + "run_id") if best else None,
        top=[_trial_info(t) for t in complete[: max(0, int(top))]],
        importances=importances,
        importance_note=note,
    )


def best_spec(name: str, storage: str | None = None) -> dict[str, Any]:
    """The best trial of a study as an experiment spec (the keys ``sadkit run SPEC.yaml`` reads)."""
    study = load_study(name, storage)
    best = _best(study)
    if best is None:
        raise SadkitError(f"study {name!r} has no complete trial yet, so no best parameters to export")
    spec = study.user_attrs.get(_ATTR + "spec")
    if not spec:
        raise SadkitError(f"study {name!r} was not created by sadkit: it does not say which detector and data it tuned")
    params = {**(spec.get("params") or {}), **(best.user_attrs.get(_ATTR + "params") or best.params)}
    out: dict[str, Any] = {
        "detector": spec["detector"],
        "dataset": spec["dataset"],
        "seed": (spec.get("seeds") or [0])[0],
        "data": spec.get("data") or {},
        "params": params,
    }
    if spec.get("experiment"):
        out["experiment"] = spec["experiment"]
    return to_json(out)


def export_best(name: str, path: str | Path, storage: str | None = None) -> Path:
    """Write the best parameters of a study as a spec that ``sadkit run PATH`` accepts."""
    spec = best_spec(name, storage)
    study = load_study(name, storage)
    best = _best(study)
    metric = study.user_attrs.get(_ATTR + "metric", "val_auroc")
    path = Path(path)
    if not path.parent.is_dir():
        raise SadkitError(f"cannot write {path}: the folder {path.parent} does not exist")
    header = (
        f"# The best parameters of study {name!r} ({describe_storage(storage)}): trial {best.number},"
        f" {metric} {best.value:.4f}.\n# Run them with: sadkit run {path}\n"
    )
    path.write_text(header + yaml.safe_dump(spec, sort_keys=False))
    ExperimentSpec.from_yaml(path)  # what we write, `sadkit run` reads
    return path
