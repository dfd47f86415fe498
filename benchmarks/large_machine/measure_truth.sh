#!/usr/bin/env bash
# Measures the gradient truth of exported actor-only checkpoints on a machine with many cores, from the root of a copy
# of the checkout, and packs the measurements into one archive (benchmarks.gradient_truth's measure stage; the score
# stage then runs where the full checkpoints are). Installs the wheels of .large_machine/wheels/ first if there are
# any (WHEELS=probe bash benchmarks/large_machine/download_wheels.sh).
#   bash benchmarks/large_machine/measure_truth.sh CHECKPOINTS_DIR JOBS ARCHIVE [MAX_SECONDS of rollouts per MuJoCo probe]
# BENCHMARK_COMMIT: the checkout's commit, recorded in the measurements where the copy has no .git
set -uo pipefail
checkpoints=$1 jobs=$2 archive=$3 max_seconds=${4:-}
state=$PWD/.large_machine
mkdir -p "$state"
if compgen -G "$state/wheels/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$state/site" \
    "$state"/wheels/*.whl || exit 1
fi
echo "$(nproc) cores"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 PYTHONPATH=$state/site:$PWD
unset MUJOCO_GL
python3 -m benchmarks.gradient_truth --stage measure --checkpoints "$checkpoints" --jobs "$jobs" \
  ${max_seconds:+--max-seconds "$max_seconds"} --output-dir "$state/gradient-truth"
tar czf "$archive" -C "$state/gradient-truth" measurements
ls -la "$archive"
