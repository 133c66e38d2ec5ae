"""Run the issue-3 evidence cells class by class (Deep SAD, then Deep SVDD), so a partial run covers
both methods on the same classes. The cells carry the same keys as those of
projects/mnist_evidence.yaml and projects/mnist_evidence_svdd.yaml, so `sadkit reproduce` on those specs
(same --tracking-uri) reads them back and writes the tables without computing anything again."""

import tempfile
import time
from pathlib import Path

from sadkit.reproduce import ReproductionSpec, reproduce

REPO = Path(__file__).resolve().parents[2]
URI = f"sqlite:///{REPO / 'results' / 'mnist_evidence' / 'mlflow.db'}"
SPECS = ("mnist_evidence.yaml", "mnist_evidence_svdd.yaml")
specs = [ReproductionSpec.from_yaml(REPO / "projects" / name) for name in SPECS]
for c in range(10):
    for spec in specs:
        spec.tracking_uri = URI
        spec.grid = {**spec.grid, "normal_class": [c]}
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            summary = reproduce(spec, tmp)
        auroc = [round(r["mean"], 2) for r in summary["cells"]]
        seconds = time.perf_counter() - started
        print(f"class {c} {spec.methods[0].label}: test AUROC {auroc}, {seconds:.0f} s", flush=True)
