"""Optuna studies: the only package of sadkit that imports optuna.

A study searches a detector's parameters for the best *validation* metric (``val_auroc`` by default,
optionally the mean over several seeds); the test metrics of every trial are logged to MLflow for
information only. The space is the detector's own :meth:`~sadkit.Detector.search_space`, less the
parameters a spec fixes (``params`` / ``--param``), with the spec's ``space`` overrides.

Every trial is a normal sadkit experiment (:func:`sadkit.experiment.run_experiment`): one MLflow run
nested under one parent run per study invocation. Deep detectors report ``val_auroc`` per training
epoch; a pruner can stop a trial, which then ends PRUNED in Optuna and KILLED with the tag
``sadkit.trial_state=PRUNED`` in MLflow. A trial that raises ends FAILED in both and the study goes on.

Storage: a SQLite file by default (``sqlite:///optuna.db``), a journal file (``journal:///FILE.log``)
or any RDB URL (PostgreSQL, MySQL). The same study name resumes: ``n_trials`` is the number of finished
(complete or pruned) trials the study should hold, so the same command run again after Ctrl-C or a
crash runs only what is missing. A worker that dies mid-trial stops sending heartbeats; its trial is
marked FAILED (in Optuna and MLflow) once the grace period has passed. ``n_jobs`` worker processes
share one study; the same command on several machines against one RDB URL shares it too.

The package has one module per job: :mod:`~sadkit.tuning.spec` (the study spec),
:mod:`~sadkit.tuning.space` (search spaces), :mod:`~sadkit.tuning.storage` (storages and heartbeats),
:mod:`~sadkit.tuning.samplers` (samplers and pruners), :mod:`~sadkit.tuning.results` (what a study
reports), :mod:`~sadkit.tuning.objective` (a trial and its callbacks), :mod:`~sadkit.tuning.workers`
(the worker loop), :mod:`~sadkit.tuning.study` (:func:`run_study`) and :mod:`~sadkit.tuning.report`
(after a study). The names below are its public API.
"""

from ._common import TRIAL_STATE_TAG
from ._parse import parse_int_list
from .objective import PruningCallback
from .report import StudyReport, best_spec, export_best, list_studies, load_study, study_report
from .results import StudyResult, TrialInfo
from .samplers import DEFAULT_PRUNER_OPTIONS, PRUNERS, SAMPLERS, make_pruner, make_sampler
from .space import SearchSpace, sample_search_space
from .spec import METRICS, STUDY_KEYS, StudySpec
from .storage import DEFAULT_STORAGE, StaleCallback, describe_storage, fail_stale_trials, open_storage, storage_url
from .study import run_study

__all__ = [
    "DEFAULT_PRUNER_OPTIONS",
    "DEFAULT_STORAGE",
    "METRICS",
    "PRUNERS",
    "SAMPLERS",
    "STUDY_KEYS",
    "TRIAL_STATE_TAG",
    "PruningCallback",
    "SearchSpace",
    "StaleCallback",
    "StudyReport",
    "StudyResult",
    "StudySpec",
    "TrialInfo",
    "best_spec",
    "describe_storage",
    "export_best",
    "fail_stale_trials",
    "list_studies",
    "load_study",
    "make_pruner",
    "make_sampler",
    "open_storage",
    "parse_int_list",
    "run_study",
    "sample_search_space",
    "storage_url",
    "study_report",
]
