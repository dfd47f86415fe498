#!/usr/bin/env bash
# Benchmark runs on a lent device machine (16 cores, one GPU), in one device call: installs the carried wheels
# (.whl/, see the device tool's README), starts one resumable runner per string (a module of benchmarks/ and its
# arguments, split on spaces) in its own process session, waits up to WAIT_S seconds, then brings back every suite's
# logs without model zips, and the ablations' runs, as $OUT/logs.tgz. A later call on the same warm machine finds the
# runners still going and only waits.
#   bash benchmarks/device/runs.sh WAIT_S "benchmarks.run --suite quick --algos td3 --jobs 8" ["benchmarks.ablation --jobs 6" ...]
set -uo pipefail
wait_s=$1; shift
start=$(date +%s)
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD; unset MUJOCO_GL  # training renders nothing; EGL fails to load there
if [ ! -f /tmp/runners.pids ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  nproc; nvidia-smi --query-gpu=name --format=csv,noheader
  # Fail fast (seconds) if the zoo or DenoisePG does not import or train here
  python3 -c "import rl_zoo3.train, gymnasium as gym; from sb3_denoise_pg import DenoisePG; gym.make('InvertedPendulum-v5');
DenoisePG('MlpPolicy', 'Pendulum-v1', learning_starts=100).learn(300); print('ok')" || exit 1
  i=0
  for args in "$@"; do
    # shellcheck disable=SC2086  # each string is one runner's module and arguments
    setsid nohup python3 -m $args >/tmp/runner_$i.log 2>&1 &
    echo $! >>/tmp/runners.pids; i=$((i + 1))
  done
fi
running() { while read -r pid; do kill -0 "$pid" 2>/dev/null && return 0; done </tmp/runners.pids; return 1; }
while [ $(( $(date +%s) - start )) -lt "$wait_s" ] && running; do
  sleep 20
  echo "$(( $(date +%s) - start )) s: $(find benchmarks/results -newer /tmp/runners.pids \( -name benchmark_run.json -o -path '*/runs/*.json' \) | wc -l) runs done"
done
tail -n 5 /tmp/runner_*.log
# Progress of the unfinished runs: the last timesteps line of each zoo log
for f in benchmarks/results/*/logs/.staging/*/train.log; do [ -f "$f" ] && echo "$f: $(grep -a total_timesteps "$f" | tail -1)"; done
tar czf "$OUT/logs.tgz" --exclude='*.zip' --exclude=.staging $(ls -d benchmarks/results/*/logs benchmarks/results/ablation*/runs 2>/dev/null)
ls -la "$OUT"
