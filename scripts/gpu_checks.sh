#!/usr/bin/env bash
# The checks that need a GPU, in one go (a GPU machine is lent for minutes, not hours):
# the CUDA tests (every zoo model in fp32 and bf16 at -O0 and -O2 against the CPU, and the
# other CUDA-marked tests), then the CUDA benchmark suite (bench/run.py --device cuda).
#   scripts/gpu_checks.sh OUT_DIR [TEST_SECONDS] [SUITE_SECONDS]
# Uses the python3 that has torch and torchvision; installs modelc (and, from ./.whl if
# present, lark and graphviz) into a private folder, so nothing else on the machine changes.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?an output folder}
mkdir -p "$out"
site=$(mktemp -d)
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" .whl/*.whl || exit 3
fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target "$site" . || exit 4
export PYTHONPATH=$site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)" | tee -a "$out/gpu.txt"
MODELC_CUDA_REPORT="$out/cuda_errors.jsonl" timeout "${2:-240}" python3 -m pytest -q -p no:cacheprovider -rs \
    tests/test_cuda.py tests/test_bench.py tests/test_passes.py tests/test_zoo.py tests/test_zoo_sequence.py \
    tests/test_zoo_vision.py -k "cuda" 2>&1 | tee "$out/cuda_tests.log" | tail -25
echo "tests: exit ${PIPESTATUS[0]}"
MODELC_COMMIT=${MODELC_COMMIT:-} timeout "${3:-300}" python3 bench/run.py --device cuda --output "$out/$(date +%F)-cuda.json" 2>&1 | tee "$out/suite.log" | tail -20
echo "suite: exit ${PIPESTATUS[0]}"
