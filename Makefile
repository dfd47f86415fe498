# Everything a fresh machine needs. torch is pinned and installed first: a bare `torch` may pull a CUDA build of
# several GB, and 2.13.0 is the CPU wheel this project is tested with.
PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: install demo test lint device-wheels docs

install:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[zoo,mujoco,box2d,extra,bench,tests]"

demo: install
	$(PYTHON) -m sb3_denoise_pg.demo

test: install
	$(PYTHON) -m pytest -n 2 --durations=10 tests

docs:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[docs]"
	rm -rf docs/_build
	$(PYTHON) -m sphinx -W --keep-going -b html docs docs/_build/html

lint:
	ruff check sb3_denoise_pg tests benchmarks
	ruff format --check sb3_denoise_pg tests benchmarks

# Wheels for benchmarks/device/runs.sh: what the lent GPU machine's Python 3.12 lacks (not huggingface_hub: its own
# 1.x imports, a 2.x needs packages it does not have). Carry `.whl` (ignore it in .git/info/exclude) in the device call.
DEVICE_WHEELS := stable_baselines3==2.9.2 sb3_contrib==2.9.2 rl_zoo3==2.9.2 gymnasium==1.4.0 farama-notifications \
	shimmy sb3-team-hf-integration wasabi optuna==5.0.0 alembic sqlalchemy mako colorlog mujoco==4.0.0 \
	mujoco-core==4.0.0 mujoco-studio==4.0.0 glfw pyopengl
device-wheels:
	$(PIP) download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 --platform any -d .whl $(DEVICE_WHEELS)
