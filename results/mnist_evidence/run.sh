#!/bin/bash
# issue 3 evidence: per class Deep SAD (gamma_l 0.05) then Deep SVDD (gamma_l 0); one store, one torch thread
set -e
# (runs from the repository root whatever the caller's folder; needs sadkit's environment active and SADKIT_DATA)
cd "$(dirname "$0")/../.."
export MLFLOW_DISABLE_TELEMETRY=true OMP_NUM_THREADS=1
URI="sqlite:///$PWD/results/mnist_evidence/mlflow.db"
python results/mnist_evidence/run_interleaved.py
sadkit reproduce projects/mnist_evidence.yaml --out results/mnist_evidence/deepsad --tracking-uri $URI
sadkit reproduce projects/mnist_evidence_svdd.yaml --out results/mnist_evidence/deepsvdd --tracking-uri $URI
