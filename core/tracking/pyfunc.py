"""The pyfunc flavour of a fitted detector: raw rows in, a score and a 0/1 label per row out."""

from __future__ import annotations

import warnings
from typing import Any

import mlflow
import numpy as np

#: the model artifact holding the detector's own save (detector.json, state.pt, preprocessing.json)
DETECTOR_ARTIFACT = "detector"


# Defining a PythonModel makes MLflow warn that ``predict`` has no type hints (for its schema inference):
# the model takes data frames and arrays of any width on purpose. MLflow resets warning filters, so the
# warning is kept from being shown while the class is made.
_shown, warnings.showwarning = warnings.showwarning, lambda *args, **kwargs: None


class DetectorModel(mlflow.pyfunc.PythonModel):
    """``predict(rows)`` returns a data frame with ``score`` (higher = more anomalous) and ``label``
    (1 = anomaly: the score is above the detector's ``threshold_``) for every row.

    Rows are raw, as the dataset read them: a data frame with the training columns (matched by name, in
    any order; extra columns are ignored with a warning, a missing one is an error naming it), or an
    array of float32 or float64 (flattened samples are reshaped). The model's preprocessing (the scalers,
    a table's encoders) is applied inside. ``params={"threshold": t}`` replaces the threshold.
    """

    def load_context(self, context: Any) -> None:
        from sadkit.persistence import load

        self.detector = load(context.artifacts[DETECTOR_ARTIFACT])

    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201 - MLflow reads the hints
        import pandas as pd

        detector = self.detector
        preprocessor = detector.preprocessor_
        if isinstance(model_input, dict):
            model_input = pd.DataFrame(model_input)
        if preprocessor is not None:
            extra = preprocessor.extra_columns(model_input)
            if extra:
                warnings.warn(f"columns not used by the model are ignored: {', '.join(extra)}", stacklevel=2)
        elif isinstance(model_input, pd.DataFrame):
            model_input = model_input.to_numpy()
        scores = detector.decision_function(model_input)
        threshold = float((params or {}).get("threshold", detector.threshold_))
        return pd.DataFrame({"score": scores, "label": (scores > threshold).astype(np.int64)})


warnings.showwarning = _shown
