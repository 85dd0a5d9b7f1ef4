#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to try the suite's SLURM path on a laptop or a CI machine, and what the
# tests run against (tests/test_slurm.py). Debian's packages: slurm-wlm (22.05) and munge.
#
#   scripts/slurm_local.sh up     install the packages if missing (root, apt-get), write slurm.conf, start munged,
#                                 slurmctld and slurmd, and wait until the node is idle
#   scripts/slurm_local.sh down   stop the daemons this script started (by their pid files)
#   scripts/slurm_local.sh env    print the line that points SLURM's commands at this cluster
#
# Everything lives in $SLURM_LOCAL_DIR (default /tmp/pedrl-slurm): slurm.conf, state, spool, logs, pid files, and
# jobcomp.txt, SLURM's record of each finished job (id, state, times). There is no slurmdbd, so `sacct` has no
# accounting to read: submitit polls it, warns "Bypassing sacct error" and relies on its result files instead.
# Commands need SLURM_CONF=$SLURM_LOCAL_DIR/slurm.conf (`eval "$(scripts/slurm_local.sh env)"`).
set -euo pipefail

dir=${SLURM_LOCAL_DIR:-/tmp/pedrl-slurm}
conf=$dir/slurm.conf

die() { echo "slurm_local: $*" >&2; exit 1; }

install_packages() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null && return
  [ "$(id -u)" = 0 ] || die "slurm-wlm and munge are not installed, and installing them needs root (apt-get)"
  command -v apt-get >/dev/null || die "slurm-wlm and munge are not installed, and this is not a Debian system"
  echo "slurm_local: installing slurm-wlm and munge (apt-get, about a minute)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_conf() {
  local host cpus mb
  host=$(hostname -s)
  cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc obeys these; a test worker sets them
  mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
  mkdir -p "$dir/state" "$dir/spool"
  cat > "$conf" <<CONF
ClusterName=pedrl
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=2048
SchedulerType=sched/backfill
ReturnToService=2
JobRequeue=1
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.txt
NodeName=$host CPUs=$cpus RealMemory=$mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
}

start_munge() {
  if munge -n </dev/null >/dev/null 2>&1; then return; fi  # a munged already answers (ours or the system's)
  [ -f /etc/munge/munge.key ] || die "/etc/munge/munge.key is missing (the munge package creates it)"
  mkdir -p /run/munge
  chown munge:munge /run/munge
  /usr/sbin/munged --force --pid-file="$dir/munged.pid"  # as root, like the daemons here
}

alive() { [ -f "$dir/$1.pid" ] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

up() {
  install_packages
  write_conf
  start_munge
  export SLURM_CONF=$conf
  for daemon in slurmctld slurmd; do
    if alive "$daemon"; then continue; fi
    "/usr/sbin/$daemon" -f "$conf" || die "$daemon did not start; see $dir/$daemon.log"
  done
  for _ in $(seq 60); do
    if sinfo -h -o %t 2>/dev/null | grep -qx idle; then
      for daemon in slurmctld slurmd; do  # an idle node may be another cluster's, on the same ports
        alive "$daemon" || die "$daemon exited: $(grep -E 'fatal|error' "$dir/$daemon.log" | tail -1); see $dir/$daemon.log"
      done
      echo "slurm_local: node $(hostname -s) idle, $(grep -o 'CPUs=[0-9]*' "$conf"); export SLURM_CONF=$conf" >&2
      return
    fi
    sleep 1
  done
  die "the node is not idle after 60 s: $(sinfo -h 2>&1 | head -1); see $dir/slurmctld.log and $dir/slurmd.log"
}

down() {
  if [ -f "$conf" ]; then  # this cluster's jobs first, so that none outlives its daemons
    SLURM_CONF=$conf scancel --user="$(id -un)" 2>/dev/null || true
    sleep 2
  fi
  pkill -f "slurmd -f $conf" || true
  pkill -f "slurmctld -f $conf" || true
  pkill -f "munged --force --pid-file=$dir/munged.pid" || true
  rm -f "$dir"/*.pid
}

case ${1:-} in
  up) up ;;
  down) down ;;
  env) echo "export SLURM_CONF=$conf" ;;
  *) die "usage: scripts/slurm_local.sh up|down|env" ;;
esac
