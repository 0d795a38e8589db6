# The two commands of the README. Both create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export DVC_NO_ANALYTICS := 1
export YOLO_OFFLINE := 1

.PHONY: demo test install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the package metadata changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tango demo projects/example-shapes

# Two pytest-xdist workers, one thread each (two torch thread pools on two cores would fight
# over them), given whole files, slow files first (tests/conftest.py orders them); a file's
# module fixtures are then built once. The log ends with the 30 slowest tests.
# TEST_WORKERS=0 runs the suite in this process.
TEST_WORKERS ?= 2

test: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) \
		--dist loadfile --no-loadscope-reorder --durations=30

clean:
	rm -rf $(VENV) runs .pytest_cache
