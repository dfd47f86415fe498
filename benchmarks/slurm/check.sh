#!/usr/bin/env bash
# A tiny sweep through a real single-node SLURM (single_node.sh), as CI runs it: the smoke suite's 2 algorithms (one
# seed, 600 steps each) submitted as one job array; one *running* task is killed, as a preempted run would be, and
# reported; the same command then submits only that run, which completes; a third invocation submits nothing. A run
# with a bad hyperparameter fails, the status table says why, and it is not submitted again unless asked. Then the
# report, and the daemons are stopped. Everything it writes is under $SLURM_STATE and $SWEEP_LOG_ROOT.
# Run as root from the repository root: bash benchmarks/slurm/check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-python3}
export SLURM_STATE=${SLURM_STATE:-/tmp/slurm-single-node}
log_root=${SWEEP_LOG_ROOT:-/tmp/slurm-sweep}
bash benchmarks/slurm/single_node.sh start
export SLURM_CONF=$SLURM_STATE/slurm.conf
trap 'bash benchmarks/slurm/single_node.sh stop' EXIT
rm -rf "$log_root" "$log_root-failing"
mkdir -p "$log_root"
sweep=("$python" -m benchmarks.run --suite smoke --launcher slurm --partition debug --time-min 10 --mem-gb 2
  --poll-s 2 --log-root "$log_root")

echo "== 1. the sweep, waited for; one running task killed, which the wait reports"
"${sweep[@]}" --wait >"$log_root/submit.log" 2>&1 &
submitter=$!
until grep -qE "job array [0-9]+" "$log_root/submit.log"; do sleep 1; done
array=$(grep -oE "job array [0-9]+" "$log_root/submit.log" | grep -oE "[0-9]+")
# Wait until a task runs, then kill it as a preemption or a time limit ends a running job
running=""
for _ in $(seq 120); do
  running=$(squeue --noheader --array --jobs "$array" --states=RUNNING --format=%i | head -n 1 | tr -d ' ')
  [ -n "$running" ] && break
  sleep 0.5
done
[ -n "$running" ] || { echo "no task of array $array ever ran" >&2; exit 1; }
sleep 3
scancel --signal=KILL "$running"
echo "killed running task $running"
if wait "$submitter"; then echo "the wait should have reported the killed run" >&2; exit 1; fi
cat "$log_root/submit.log"
grep -q "^FAILED .*interrupted" "$log_root/submit.log"
echo "== 2. the same command: only the killed run is submitted again, and completes"
"${sweep[@]}" --wait | tee "$log_root/again.log"
grep -q "1 to submit" "$log_root/again.log"
echo "== 3. again: nothing left to submit"
"${sweep[@]}" | tee "$log_root/done.log"
grep -q "2 finished, 0 queued or running, 0 to submit" "$log_root/done.log"
"${sweep[@]}" --status

echo "== 4. a run that fails is reported, explained and not submitted again"
failing=("$python" -m benchmarks.run --suite smoke --algos td3 --launcher slurm --partition debug --time-min 10
  --mem-gb 2 --poll-s 2 --log-root "$log_root-failing")
if "${failing[@]}" --wait -- --hyperparams bogus_param:1; then
  echo "the bad hyperparameter should have failed its run" >&2
  exit 1
fi
"${failing[@]}" --status | tee "$log_root/status.log"
grep -q "| failed |" "$log_root/status.log"
grep -q "bogus_param" "$log_root/status.log"
"${failing[@]}" -- --hyperparams bogus_param:1 | tee "$log_root/failing-again.log"
grep -q "not submitted again" "$log_root/failing-again.log"
grep -q "0 to submit" "$log_root/failing-again.log"

echo "== 5. the report of the sweep"
"$python" -m benchmarks.report --suite smoke --log-root "$log_root" --output-dir "$log_root/report" >/dev/null
"$python" - "$log_root" <<'PY'
import json, pathlib, sys
for marker in sorted(pathlib.Path(sys.argv[1]).glob("*/*/benchmark_run.json")):
    data = json.loads(marker.read_text())
    print(f"{data['algo']} seed {data['seed']}: {data['wall_time_s']} s, ran on {data['where']}")
PY
echo "SLURM check passed"
