"""The pyfunc model of a sadkit detector, logged as code (MLflow's "models from code").

MLflow copies this file into every logged model and runs it when the model is loaded (``mlflow.pyfunc.
load_model``, ``mlflow models serve``): it defines :class:`DetectorModel` and hands MLflow an instance.
Nothing is pickled. The fitted detector itself is the model's artifact ``detector``, the folder that
:meth:`sadkit.Detector.save` wrote (JSON and tensors), read back by sadkit without running any code from it.
"""

import mlflow

from sadkit.tracking.pyfunc import DetectorModel

mlflow.models.set_model(DetectorModel())
