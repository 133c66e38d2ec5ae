#!/bin/bash
# issue 3 evidence at the paper's schedule (150 + 150 epochs): Deep SAD (gamma_l 0.05), then Deep SVDD (gamma_l 0),
# normal classes 0-9, seed 0, two cells at a time, one torch thread each; one MLflow store.
# (runs from the repository root whatever the caller's folder; needs sadkit's environment active and SADKIT_DATA)
set -e
cd "$(dirname "$0")/../.."
export MLFLOW_DISABLE_TELEMETRY=true OMP_NUM_THREADS=1
URI="sqlite:///$PWD/results/mnist_evidence_paper/mlflow.db"
sadkit reproduce projects/mnist_evidence_paper.yaml --out results/mnist_evidence_paper/deepsad --tracking-uri "$URI" --workers 2
sadkit reproduce projects/mnist_evidence_svdd_paper.yaml --out results/mnist_evidence_paper/deepsvdd --tracking-uri "$URI" --workers 2
