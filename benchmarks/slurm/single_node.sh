#!/usr/bin/env bash
# Starts a single-node SLURM on this machine (Debian's slurm-wlm and munge: munged, slurmctld and slurmd on
# localhost, one partition "debug" with every core), to try cluster sweeps without a cluster. Run as root; installs
# the packages if they are missing. It touches only what it starts: its configuration, munge key and socket, spool,
# logs and pid files are all under $SLURM_STATE (default /tmp/slurm-single-node), the daemons read that configuration
# (not /etc/slurm) and `stop` ends the processes of its own pid files. Clients find it through SLURM_CONF:
#   bash benchmarks/slurm/single_node.sh start | stop | install
#   export SLURM_CONF=/tmp/slurm-single-node/slurm.conf     # then sbatch, squeue, sinfo talk to it
set -euo pipefail
state=${SLURM_STATE:-/tmp/slurm-single-node}
action=${1:-start}
conf=$state/slurm.conf

stop() {
  for daemon in slurmd slurmctld munged; do
    pid_file=$state/run/$daemon.pid
    pid=$(cat "$pid_file" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
    rm -f "$pid_file"
  done
}

if [ "$action" = stop ]; then stop; exit 0; fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge
fi
# `install` only installs the packages (CI does it while other stages run)
if [ "$action" = install ]; then exit 0; fi
stop
mkdir -p "$state"/{spool/ctld,spool/d,log,run,munge}
chmod 700 "$state/munge"
# munge: its own key, socket and daemon, run as root (as the daemons below)
[ -s "$state/munge/munge.key" ] || dd if=/dev/urandom bs=1 count=1024 of="$state/munge/munge.key" status=none
chmod 400 "$state/munge/munge.key"
munged --force --key-file="$state/munge/munge.key" --socket="$state/munge/socket" --pid-file="$state/run/munged.pid" \
  --log-file="$state/log/munged.log" --seed-file="$state/munge/seed"
# Every core, whatever OMP_NUM_THREADS says (nproc honours it)
cores=$(nproc --all)
memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
cat > "$conf" <<CONF
ClusterName=single
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$state/munge/socket
StateSaveLocation=$state/spool/ctld
SlurmdSpoolDir=$state/spool/d
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$state/run/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MaxArraySize=10001
NodeName=localhost CPUs=$cores Sockets=1 CoresPerSocket=$cores ThreadsPerCore=1 RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$conf
slurmctld -f "$conf"
slurmd -f "$conf"
for _ in $(seq 30); do
  if sinfo --noheader --format=%T 2>/dev/null | grep -qE "idle|mixed|alloc"; then
    sinfo
    echo "SLURM is up: export SLURM_CONF=$conf"
    exit 0
  fi
  sleep 1
done
echo "SLURM did not come up; logs in $state/log" >&2
tail -n 20 "$state"/log/*.log >&2
exit 1
