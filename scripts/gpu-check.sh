#!/usr/bin/env bash
# The GPU paths, as one script for a machine with an NVIDIA GPU: the CUDA and TensorRT classes
# of the backend suite and of the training tests (they skip elsewhere), a tiny classification
# and detection search + train with `train.device: cuda`, the training-throughput benchmark
# with its CUDA cases, and benchmarks/backends.py for the gpu-server runner.
#
#   scripts/gpu-check.sh            # with the repository's .venv (make install first)
#   PYTHON=python3 scripts/gpu-check.sh
#
# Where the machine has PyTorch, onnxruntime and OpenCV but not the rest, the wheels in
# .gpu-wheels (ultralytics, ultralytics-thop, ultralytics-platform, polars, optuna, alembic,
# sqlalchemy, mako, colorlog, onnxslim, jsonschema and its three helpers: `pip download
# --no-deps` them for the machine's Python) are installed into /tmp/tango-gpu-site and the
# package is used from this folder. Results go to $OUT (default gpu-check-out/).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
if [ -d .gpu-wheels ] && ! "$PY" -c "import ultralytics, optuna, jsonschema" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --target /tmp/tango-gpu-site .gpu-wheels/*.whl 2>&1 | tail -3
    export PYTHONPATH=/tmp/tango-gpu-site:$PWD
fi
export DVC_NO_ANALYTICS=1 YOLO_OFFLINE=1 PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  "$PY" -c "import torch, onnxruntime; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available()); print('onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers())"
  "$PY" -c "import tensorrt; print('tensorrt', tensorrt.__version__)" 2>&1 | tail -1
  "$PY" -c "import tvm; print('tvm', tvm.__version__, 'cuda', tvm.cuda().exist)" 2>&1 | tail -1
} | tee "$OUT/host.txt"
"$PY" -m pytest -p no:cacheprovider -q -rs -m "gpu or tensorrt" tests/compile/test_backends.py \
    tests/train --junitxml="$OUT/junit.xml" 2>&1 | tee "$OUT/pytest.txt"
status=${PIPESTATUS[0]}
# a tiny search + train of each task on the GPU, as `tango run` does it
work=$(mktemp -d)
"$PY" scripts/gpu_pipeline.py "$work" 2>&1 | tee "$OUT/pipeline.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
"$PY" benchmarks/training.py --cuda --repeats 1 --epochs 3 --out "$OUT" \
    --name training-gpu 2>&1 | tee "$OUT/training.txt"
if [ "${GPU_CHECK_BACKENDS:-1}" = 1 ]; then
    "$PY" benchmarks/backends.py --runner gpu-server --models resnet18 densenet121 --sizes 224 \
        --batches 1 8 --seconds 3 --threads 4 --out "$OUT" 2>&1 | tee "$OUT/bench.txt"
fi
exit "$status"
