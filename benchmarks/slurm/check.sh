#!/usr/bin/env bash
# A tiny sweep through a real single-node SLURM (single_node.sh): the smoke suite's 2 algorithms x 2 seeds (600 steps
# each) submitted as one job array; one task is cancelled at once, as a preempted run would be, and reported; the
# same command then submits only that run, which completes; a third invocation submits nothing; then the report.
# Run as root from the repository root (it starts the SLURM daemons): bash benchmarks/slurm/check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-python3}
log_root=${SWEEP_LOG_ROOT:-/tmp/slurm-sweep}
export OMP_NUM_THREADS=1
bash benchmarks/slurm/single_node.sh start
rm -rf "$log_root"
sweep=("$python" -m benchmarks.run --suite smoke --seeds 2 --launcher slurm --partition debug --time-min 10 --mem-gb 2
  --log-root "$log_root")

echo "== 1. the sweep, waited for; one task cancelled, which the wait reports"
"${sweep[@]}" --wait >/tmp/slurm-sweep-submit.log 2>&1 &
submitter=$!
until grep -qE "job array [0-9]+" /tmp/slurm-sweep-submit.log; do sleep 1; done
array=$(grep -oE "job array [0-9]+" /tmp/slurm-sweep-submit.log | grep -oE "[0-9]+")
sleep 2
# As a preemption or a time limit ends it: killed if it runs (submitit lets the first SIGTERM pass), else cancelled
# (a signal to one pending task of an array would reach every pending task of it)
if [ "$(squeue --noheader --array --jobs "${array}_1" --format=%T)" = RUNNING ]; then
  scancel --signal=KILL "${array}_1"
else
  scancel "${array}_1"
fi
if wait "$submitter"; then echo "the wait should have reported the cancelled run" >&2; exit 1; fi
cat /tmp/slurm-sweep-submit.log
grep -q "^FAILED" /tmp/slurm-sweep-submit.log
echo "== 2. the same command: only the cancelled run is submitted again, and completes"
"${sweep[@]}" --wait
echo "== 3. again: nothing left to submit"
"${sweep[@]}" | tee /tmp/slurm-sweep-again.log
grep -q "4 finished, 0 queued or running, 0 to submit" /tmp/slurm-sweep-again.log
echo "== 4. the report of the sweep"
"$python" -m benchmarks.report --suite smoke --log-root "$log_root" --output-dir "$log_root/report"
"$python" - "$log_root" <<'PY'
import json, pathlib, sys
for marker in sorted(pathlib.Path(sys.argv[1]).glob("*/*/benchmark_run.json")):
    data = json.loads(marker.read_text())
    print(f"{data['algo']} seed {data['seed']}: {data['wall_time_s']} s, ran on {data['where']}")
PY
echo "SLURM check passed"
