#!/usr/bin/env bash
# Starts a single-node SLURM on this machine (Debian's slurm-wlm and munge: munged, slurmctld and slurmd on
# localhost, one partition "debug" with every core), to try cluster sweeps without a cluster. Run as root; installs
# the packages if they are missing. Everything it writes is under $SLURM_STATE (default /tmp/slurm-single-node).
#   bash benchmarks/slurm/single_node.sh start | stop
set -euo pipefail
state=${SLURM_STATE:-/tmp/slurm-single-node}
action=${1:-start}

stop() {
  pkill -x slurmd 2>/dev/null || true
  pkill -x slurmctld 2>/dev/null || true
  pkill -x munged 2>/dev/null || true
}

if [ "$action" = stop ]; then stop; exit 0; fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge
fi
stop
mkdir -p "$state"/{spool/ctld,spool/d,log,run} /etc/slurm /run/munge /var/log/munge /var/lib/munge
# munge: a key and its daemon, run as root (as the daemons below)
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
chmod 400 /etc/munge/munge.key
munged --force 2>/dev/null
cores=$(nproc)
memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=single
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
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
rm -f /etc/slurm/cgroup.conf  # no cgroups: ProctrackType=proctrack/linuxproc, TaskPlugin=task/none
slurmctld
slurmd
for _ in $(seq 30); do
  if sinfo --noheader --format=%T 2>/dev/null | grep -qE "idle|mixed|alloc"; then
    sinfo
    exit 0
  fi
  sleep 1
done
echo "SLURM did not come up; logs in $state/log" >&2
tail -n 20 "$state"/log/*.log >&2
exit 1
