"""Reproductions: a grid of experiments (methods x data settings x seeds) -> a table beside the paper.

A reproduction spec (YAML, see ``projects/README.md``) names the methods, the dataset, the data
parameters to vary, the seeds and the paper table to compare with. Every cell (method, data setting,
seed) is one tracked experiment, tagged with a stable key, nested under one parent run per
invocation. Cells whose run already FINISHED in the tracking store are read back, not run again, so
an interrupted reproduction resumes where it stopped.

Modules: ``spec`` (the spec and its cells), ``runner`` (running the cells), ``tasks`` (what a worker runs:
a list of cells), ``executors`` (this process, a local process pool), ``cluster`` (a Dask cluster: the only
module importing dask), ``report`` (aggregation, tables, CSV files and the plot).
"""

from .report import CellResult
from .runner import Progress, preflight, reproduce
from .spec import KEY_TAG, METHOD_KEYS, SPEC_KEYS, Cell, Method, ReproductionSpec

__all__ = [
    "KEY_TAG",
    "METHOD_KEYS",
    "SPEC_KEYS",
    "Cell",
    "CellResult",
    "Method",
    "Progress",
    "ReproductionSpec",
    "preflight",
    "reproduce",
]
