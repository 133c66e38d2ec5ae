#!/usr/bin/env bash
# The GPU check: one prepared script for a CUDA machine (the workplace's `device` tool, or any GPU box).
#
#   bash benchmarks/gpu_check.sh [OUTDIR]        (default OUTDIR: $OUT, else results/gpu_check)
#
# What it runs, each step under its own time limit so one slow step cannot eat the others:
#   1. the machine: nvidia-smi, torch and CUDA versions                       -> env.txt
#   2. the test suite with device "auto" = CUDA (the CUDA-only tests run too)  -> pytest.log
#   3. benchmarks/mnist_speed.py --device cuda, float32 and bf16              -> mnist_fp32/, mnist_bf16/
#   4. a two-trial `sadkit study --devices 0` on MNIST                         -> study.log
#   5. benchmarks/stacked.py --device cuda, when it exists                     -> stacked.log
#
# On a machine without sadkit's dependencies (the device machine has torch, scikit-learn, pandas, h5py,
# typer and rich, but no mlflow or optuna), wheels in .whl/ are installed into /tmp/site first;
# data come from $SADKIT_DATA, else .gpudata/ (a copy of ../shared/data), else ../shared/data. Preparing
# them on this (CPU) machine, from the repository root:
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl -r <(the packages of `pip list` that the GPU machine lacks)
#
# Measured on 2026-11-30 (an H200 machine, Python 3.12): it lacks mlflow, mlflow-skinny, mlflow-tracing,
# optuna, stevedore, the dependencies of mlflow it lacks (alembic, sqlalchemy, graphene, graphql-core, graphql-relay,
# flask, flask-cors, gunicorn, huey, fastapi, starlette, uvicorn, docker, databricks-sdk, google-auth, pyasn1,
# pyasn1_modules, cachetools, gitpython, gitdb, smmap, opentelemetry-*, pydantic, pydantic_core,
# typing-inspection, annotated-types, python-dotenv, sqlparse, mako, itsdangerous, blinker, importlib_metadata,
# prettytable, wcwidth, skops, colorlog, platformdirs, pooch), cryptography, cffi, pycparser (MLflow's SQLite
# store needs cryptography) and cvxopt (SSAD). About 35 MB of wheels; with the data the call stays under 64 MB.
#   mkdir -p .gpudata && cp -r ../shared/data/MNIST ../shared/data/odds .gpudata/
#
# and carry .whl and .gpudata with the command (both are ignored by git).
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${1:-${OUT:-results/gpu_check}}
mkdir -p "$OUTDIR"
export PYTHONUNBUFFERED=1 MLFLOW_DISABLE_TELEMETRY=true MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false
if [ -z "${SADKIT_DATA:-}" ]; then
    if [ -d .gpudata ]; then export SADKIT_DATA=$PWD/.gpudata; else export SADKIT_DATA=$PWD/../shared/data; fi
fi
T0=$(date +%s)
step() { echo "== $(($(date +%s) - T0)) s: $*"; }

if ! python3 -c "import sadkit, mlflow, optuna" 2>/dev/null; then
    step "installing the carried wheels and sadkit into /tmp/site"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH
    for pkg in . examples/*/; do
        python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --upgrade --target /tmp/site "$pkg" \
            || exit 1
    done
fi

step "machine"
{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    python3 -c "import torch, sadkit; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'device', torch.cuda.get_device_name(0), 'sadkit', sadkit.__version__)"
    nproc
} >"$OUTDIR/env.txt" 2>&1
cat "$OUTDIR/env.txt"

step "test suite, device auto = CUDA"
timeout 240 python3 -m pytest -q -n 8 -p no:cacheprovider tests >"$OUTDIR/pytest.log" 2>&1
echo "pytest exit $?"
tail -25 "$OUTDIR/pytest.log"

step "MNIST speed, float32"
timeout 150 python3 benchmarks/mnist_speed.py --device cuda --epochs 10 --pipelines reference,sadkit \
    --out "$OUTDIR/mnist_fp32" 2>&1 | tail -12

step "MNIST speed, bf16 autocast (sadkit only; the reference has none)"
timeout 60 python3 benchmarks/mnist_speed.py --device cuda --epochs 10 --pipelines sadkit --amp bf16 \
    --out "$OUTDIR/mnist_bf16" 2>&1 | tail -8

step "two-trial study on GPU 0"
rm -f /tmp/gpu_check_optuna.db /tmp/gpu_check_mlflow.db
(cd /tmp && timeout 120 sadkit study deepsad mnist --data normal_class=0 --data ratio_known_outlier=0.01 \
    -p n_epochs=3 -p ae_n_epochs=3 --n-trials 2 --devices 0 --study-name gpu-check \
    --storage sqlite:////tmp/gpu_check_optuna.db --tracking-uri sqlite:////tmp/gpu_check_mlflow.db) \
    >"$OUTDIR/study.log" 2>&1
echo "study exit $?"
tail -20 "$OUTDIR/study.log"

if [ -f benchmarks/stacked.py ]; then
    step "stacked training on CUDA"
    timeout 240 python3 benchmarks/stacked.py --device cuda --mnist-only --out "$OUTDIR/stacked" \
        >"$OUTDIR/stacked.log" 2>&1
    echo "stacked exit $?"
    tail -20 "$OUTDIR/stacked.log"
fi
step "done"
