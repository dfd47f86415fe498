#!/usr/bin/env bash
# Runs several resumable benchmark runners at once on a larger machine with many cores, from the root of a copy of
# the checkout: installs the wheels of .large_machine/wheels/ if there are any (download_wheels.sh), checks in
# seconds that the zoo and DenoisePG import and train, starts one runner per string (a module of benchmarks/ and its
# arguments, split on spaces) in its own process session, waits up to WAIT_S seconds (or until they all ended), then
# packs every suite's logs without model zips, and the ablations' runs, into one archive. Running it again while the
# runners are still going only waits and packs again. Everything it writes besides results is under .large_machine/.
#   bash benchmarks/large_machine/run_suites.sh WAIT_S "benchmarks.run --suite quick --algos td3 --jobs 8" ["benchmarks.ablation --jobs 6" ...]
# LOGS_ARCHIVE: where the archive goes (default .large_machine/logs.tgz); `tar xzf logs.tgz` at the root of the
# checkout the suites are reported from merges the runs with the committed ones.
set -uo pipefail
wait_s=$1; shift
start=$(date +%s)
state=$PWD/.large_machine
archive=${LOGS_ARCHIVE:-$state/logs.tgz}
mkdir -p "$state"
# Training renders nothing: no MuJoCo rendering backend (an EGL one that does not load would fail the import)
export PYTHONUNBUFFERED=1 PYTHONPATH=$state/site:$PWD; unset MUJOCO_GL
if [ ! -f "$state/runners.pids" ]; then
  if compgen -G "$state/wheels/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$state/site" \
      "$state"/wheels/*.whl || exit 1
  fi
  echo "$(nproc) cores"; nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || true
  # Fail fast (seconds) if the zoo or DenoisePG does not import or train here
  python3 -c "import rl_zoo3.train, gymnasium as gym; from sb3_denoise_pg import DenoisePG; gym.make('InvertedPendulum-v5');
DenoisePG('MlpPolicy', 'Pendulum-v1', learning_starts=100).learn(300); print('ok')" || exit 1
  i=0
  for args in "$@"; do
    # shellcheck disable=SC2086  # each string is one runner's module and arguments
    setsid nohup python3 -m $args >"$state/runner_$i.log" 2>&1 &
    echo $! >>"$state/runners.pids"; i=$((i + 1))
  done
fi
running() { while read -r pid; do kill -0 "$pid" 2>/dev/null && return 0; done <"$state/runners.pids"; return 1; }
while [ $(( $(date +%s) - start )) -lt "$wait_s" ] && running; do
  sleep 20
  echo "$(( $(date +%s) - start )) s: $(find benchmarks/results -newer "$state/runners.pids" \( -name benchmark_run.json -o -path '*/runs/*.json' \) | wc -l) runs done"
done
tail -n 5 "$state"/runner_*.log
# Progress of the unfinished runs: the last timesteps line of each zoo log
for f in benchmarks/results/*/logs/.staging/*/train.log; do [ -f "$f" ] && echo "$f: $(grep -a total_timesteps "$f" | tail -1)"; done
# shellcheck disable=SC2046  # one argument per folder
tar czf "$archive" --exclude='*.zip' --exclude=.staging $(ls -d benchmarks/results/*/logs benchmarks/results/ablation*/runs 2>/dev/null)
ls -la "$archive"
