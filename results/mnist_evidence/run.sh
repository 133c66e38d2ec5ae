#!/bin/bash
# issue 3 evidence: per class Deep SAD (gamma_l 0.05) then Deep SVDD (gamma_l 0); one store, one torch thread
set -e
cd /work/main
export MLFLOW_DISABLE_TELEMETRY=true SADKIT_DATA=/work/shared/data OMP_NUM_THREADS=1
URI=sqlite:////work/main/results/mnist_evidence/mlflow.db
/work/venv/bin/python results/mnist_evidence/run_interleaved.py
/work/venv/bin/sadkit reproduce projects/mnist_evidence.yaml --out results/mnist_evidence/deepsad --tracking-uri $URI
/work/venv/bin/sadkit reproduce projects/mnist_evidence_svdd.yaml --out results/mnist_evidence/deepsvdd --tracking-uri $URI
