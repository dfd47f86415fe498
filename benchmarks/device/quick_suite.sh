#!/usr/bin/env bash
# Runs the quick suite on a lent GPU machine (16 cores, one GPU shared by all runs) across several device calls:
# the first call installs the carried wheels and starts the resumable runner in its own process session, every call
# waits up to $1 seconds and brings back the finished runs' small files (no model zips) as $OUT/quick_logs.tgz.
#   bash benchmarks/device/quick_suite.sh 560 [runner args...]
set -uo pipefail
wait_s=${1:-560}; shift || true
start=$(date +%s)
export MUJOCO_GL=egl PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD
logs=benchmarks/results/quick/logs
if [ ! -f /tmp/suite.pid ] || ! kill -0 "$(cat /tmp/suite.pid)" 2>/dev/null; then
  if [ ! -d /tmp/site ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  fi
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; nproc
  # Fail fast if DenoisePG does not train on the GPU
  python3 -c "from sb3_denoise_pg import DenoisePG; DenoisePG('MlpPolicy', 'Pendulum-v1', learning_starts=100, device='cuda').learn(300); print('cuda ok')" || exit 1
  setsid nohup python3 -m benchmarks.run --suite quick --jobs 16 --device cuda "$@" >/tmp/suite.log 2>&1 &
  echo $! >/tmp/suite.pid
fi
while [ $(( $(date +%s) - start )) -lt "$wait_s" ] && kill -0 "$(cat /tmp/suite.pid)" 2>/dev/null; do
  sleep 30
  echo "$(( $(date +%s) - start )) s: $(find $logs -name benchmark_run.json 2>/dev/null | wc -l) runs done," \
    "$(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader)"
done
cat /tmp/suite.log
# Progress of the unfinished runs: the last timesteps line of each zoo log
for f in $logs/.staging/*/train.log; do [ -f "$f" ] && echo "$f: $(grep -a total_timesteps "$f" | tail -1)"; done
tar czf "$OUT/quick_logs.tgz" --exclude='*.zip' --exclude=.staging $logs 2>/dev/null
ls -la "$OUT"
