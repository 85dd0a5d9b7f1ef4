#!/usr/bin/env bash
# Ray for the suite's sweeps, on this machine, in an environment of its own: hydra-ray-launcher 1.2.2 needs
# cloudpickle<3, and joblib 1.6 (the joblib launcher, in the test extra) needs cloudpickle>=3, so the two cannot share
# one environment (pip check refuses it). What tests/test_ray.py runs against.
#
#   scripts/ray_local.sh env    make $RAY_VENV (default .venv-ray) with the suite and its ray extra, if missing
#   scripts/ray_local.sh up     start a local Ray head (2 CPUs, dashboard on 127.0.0.1:8265 for `ray list`)
#   scripts/ray_local.sh down   stop it
#
# Then: $RAY_VENV/bin/python train.py -m hydra/launcher=ray hydra.launcher.ray.init.address=auto \
#         +hydra.launcher.ray.init.object_store_memory=null ...
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${RAY_VENV:-.venv-ray}

die() { echo "ray_local: $*" >&2; exit 1; }

make_env() {
  [ -x "$venv/bin/ray" ] && "$venv/bin/python" -c "import hydra_plugins.hydra_ray_launcher, suite" 2>/dev/null && return
  echo "ray_local: making $venv (the suite with its ray extra; about two minutes)" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet torch==2.13.0 || "$venv/bin/python" -m pip install --quiet "torch>=2.4,<2.15"
  "$venv/bin/python" -m pip install --quiet -e ".[ray]" || die "pip could not install the ray extra into $venv"
}

case ${1:-} in
  env) make_env ;;
  up)
    make_env
    "$venv/bin/ray" start --head --num-cpus="$(nproc)" --disable-usage-stats --include-dashboard=true \
      --dashboard-host=127.0.0.1 >/dev/null || die "ray start failed; see /tmp/ray/session_latest/logs"
    echo "ray_local: head up ($(nproc) CPUs); connect with hydra.launcher.ray.init.address=auto" >&2 ;;
  down) [ -x "$venv/bin/ray" ] && "$venv/bin/ray" stop --force >/dev/null 2>&1 || true ;;
  *) die "usage: scripts/ray_local.sh env|up|down" ;;
esac
