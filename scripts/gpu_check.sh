#!/usr/bin/env bash
# The suite's GPU checks in one call (a machine with CUDA and PyTorch; the project installed, or its dependencies on
# PYTHONPATH): the tests marked cuda (sparse compute through cuSPARSE, exact kill-and-resume of DQN and SAC on the
# GPU, a GPU checkpoint resumed on the CPU, replay batches staged in one pinned copy), then the sparse-compute
# benchmark and `benchmarks.all --quick` on the GPU. The timeouts add up to 8 minutes, one device call. Logs go to
# ${OUT:-gpu_check} as it runs.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_check}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$out/device.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" 2>&1 | tee -a "$out/device.txt"
timeout 300 python3 -m pytest -q -p no:cacheprovider -o addopts=-ra -m cuda tests/test_sparse_compute.py tests/test_resume.py \
    tests/test_replay.py 2>&1 \
    | tee "$out/pytest.txt"
timeout 90 python3 benchmarks/sparse_training.py --device cuda --threads 4 --only learner,atari 2>&1 \
    | grep -v "sparse compute at" | tee "$out/sparse_training_cuda.txt"
timeout 90 python3 -m benchmarks.all --device cuda --quick 2>&1 | tee "$out/benchmarks_all_cuda_quick.txt"
