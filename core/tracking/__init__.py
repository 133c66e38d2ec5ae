"""Everything MLflow: the only package of sadkit that imports mlflow.

One run per experiment (nested runs for study trials). A run logs its parameters (flattened),
per-epoch losses (``pretrain_loss``, ``train_loss``; step = epoch), validation and test metrics,
learned arrays such as the hypersphere center ``c`` (artifact + ``c_norm`` metric), the fitted detector
as an MLflow LoggedModel (from code) whose ``predict`` returns a score and a label per raw row, a ROC
curve and a score histogram (and, for image data, grids of the most and least anomalous test images).
A run that raises ends FAILED (KILLED on Ctrl-C, SIGTERM, SIGHUP) and keeps what it logged; a run
beats (tag ``sadkit.heartbeat``) while it is open, and a run whose process vanished is ended KILLED by
the sweep that runs whenever a store is opened (``heartbeat``).

The default tracking store is a SQLite file in the working directory (``sqlite:///mlflow.db``);
``MLFLOW_TRACKING_URI`` or an explicit URI overrides it.

Modules: ``store`` (the tracking URI, checking and opening a store, ending runs), ``heartbeat`` (run
heartbeats and the sweep of stale runs), ``tracker`` (:class:`Tracker`: the
store and experiment, opening and querying runs), ``run`` (:class:`RunLogger`: what goes into a run),
``model`` (the pyfunc model flavour of a detector), ``figures`` (figures drawn by a helper process while
the next task trains).
"""

import os

# before mlflow is first imported (by the modules below)
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from .heartbeat import HEARTBEAT_TAG, SWEPT_TAG, SweptRun, sweep_store  # noqa: E402
from .model import (  # noqa: E402
    MODEL_ARTIFACT,
    DetectorModel,
    download_detector,
    download_model_detector,
    load_model,
)
from .run import RunLogger, flatten  # noqa: E402
from .store import (  # noqa: E402
    DEFAULT_EXPERIMENT,
    DEFAULT_TRACKING_URI,
    PARENT_TAG,
    check_store,
    get_run,
    is_local_store,
    open_client,
    resolve_tracking_uri,
    terminate,
)
from .tracker import Tracker, shared_tracker  # noqa: E402

__all__ = [
    "DEFAULT_EXPERIMENT",
    "DEFAULT_TRACKING_URI",
    "HEARTBEAT_TAG",
    "MODEL_ARTIFACT",
    "PARENT_TAG",
    "SWEPT_TAG",
    "DetectorModel",
    "RunLogger",
    "SweptRun",
    "Tracker",
    "check_store",
    "download_detector",
    "download_model_detector",
    "flatten",
    "get_run",
    "is_local_store",
    "load_model",
    "open_client",
    "resolve_tracking_uri",
    "shared_tracker",
    "sweep_store",
    "terminate",
]
