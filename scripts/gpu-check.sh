#!/usr/bin/env bash
# The GPU paths, as one script for a machine with an NVIDIA GPU: the backend suite's CUDA and
# TensorRT classes (they skip elsewhere) and benchmarks/backends.py for the gpu-server runner.
#
#   scripts/gpu-check.sh            # with the repository's .venv (make install first)
#   PYTHON=python3 scripts/gpu-check.sh
#
# Where the machine has PyTorch and onnxruntime but not the rest, what is missing is installed
# from a folder of wheels in .gpu-wheels (pip download pytest jsonschema pyyaml tqdm pillow onnxslim)
# into /tmp/tango-gpu-site. Results go to $OUT (default gpu-check-out/).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
if [ -d .gpu-wheels ]; then  # what the machine's Python lacks, from the carried wheels
    missing=$("$PY" -c "
import importlib.util as u
names = {'pytest': 'pytest', 'iniconfig': 'iniconfig', 'pluggy': 'pluggy',
         'packaging': 'packaging', 'pygments': 'pygments', 'jsonschema': 'jsonschema',
         'attrs': 'attrs', 'referencing': 'referencing', 'rpds': 'rpds-py',
         'jsonschema_specifications': 'jsonschema-specifications', 'yaml': 'pyyaml',
         'tqdm': 'tqdm', 'PIL': 'pillow', 'onnxslim': 'onnxslim', 'colorama': 'colorama',
         'ml_dtypes': 'ml-dtypes'}
print(' '.join(p for m, p in names.items() if u.find_spec(m) is None))")
    if [ -n "$missing" ]; then
        # shellcheck disable=SC2086
        "$PY" -m pip install -q --no-index --find-links .gpu-wheels --no-deps \
            --target /tmp/tango-gpu-site \
            $missing 2>&1 | tail -3
        export PYTHONPATH=/tmp/tango-gpu-site
    fi
fi
export DVC_NO_ANALYTICS=1 YOLO_OFFLINE=1
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  "$PY" -c "import torch, onnxruntime; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available()); print('onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers())"
  "$PY" -c "import tensorrt; print('tensorrt', tensorrt.__version__)" 2>&1 | tail -1
  "$PY" -c "import tvm; print('tvm', tvm.__version__, 'cuda', tvm.cuda().exist)" 2>&1 | tail -1
} | tee "$OUT/host.txt"
"$PY" -m pytest -p no:cacheprovider -q -rs -m "gpu or tensorrt" tests/compile/test_backends.py \
    --junitxml="$OUT/junit.xml" 2>&1 | tee "$OUT/pytest.txt"
status=${PIPESTATUS[0]}
"$PY" benchmarks/backends.py --runner gpu-server --models resnet18 densenet121 --sizes 224 \
    --batches 1 8 --seconds 3 --threads 4 --out "$OUT" 2>&1 | tee "$OUT/bench.txt"
exit "$status"
