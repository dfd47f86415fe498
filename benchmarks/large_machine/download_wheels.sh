#!/usr/bin/env bash
# Downloads, on this machine, the wheels that the larger machine's Python lacks, into .large_machine/wheels/ of the
# checkout (ignored by git); copy that folder with the checkout and run_suites.sh installs them there.
# The list is what a Python 3.12 with torch, numpy and huggingface_hub 1.x (not 2.x: it needs packages that such a
# machine lacks) but no RL packages needs; edit it for another machine.
#   [WHEELS=probe] bash benchmarks/large_machine/download_wheels.sh [PYTHON_VERSION (default 3.12)]
set -euo pipefail
python_version=${1:-3.12}
cd "$(dirname "$0")/../.."
# WHEELS=probe: only what measure_truth.sh needs (no zoo; glfw and pyopengl because mujoco imports them);
# WHEELS="name==version ...": that list
probe="stable_baselines3==2.9.2 gymnasium==1.4.0 farama-notifications mujoco==4.0.1 mujoco-core==4.0.1 glfw pyopengl"
full="stable_baselines3==2.9.2 sb3_contrib==2.9.2 rl_zoo3==2.9.2 gymnasium==1.4.0 farama-notifications shimmy
  sb3-team-hf-integration wasabi optuna==5.1.0 alembic sqlalchemy mako colorlog mujoco==4.0.1 mujoco-core==4.0.1
  mujoco-studio==4.0.1 glfw pyopengl"
case ${WHEELS:-} in probe) list=$probe ;; "") list=$full ;; *) list=$WHEELS ;; esac
# shellcheck disable=SC2206  # one wheel per word
wheels=($list)
"${PYTHON:-python3}" -m pip download -q --no-deps --only-binary=:all: --python-version "$python_version" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any -d .large_machine/wheels "${wheels[@]}"
ls .large_machine/wheels
