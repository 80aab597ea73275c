# GPT-1 from scratch. `make course` runs the book; `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install course test lab export benchmarks clean

install: $(STAMP)

# Create the virtual environment when missing; reinstall when the project's specs change.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Run every notebook top to bottom in the automatic profile, regenerating figures/.
course: $(STAMP)
	$(PY) tools/run_notebooks.py

# Unit tests, export sync, ruff and nbval over notebooks/, in the smoke profile unless set.
test: $(STAMP)
	GPT1_PROFILE=$${GPT1_PROFILE:-smoke} $(PY) -m pytest

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

export: $(STAMP)
	$(PY) tools/export.py

benchmarks: $(STAMP)
	$(PY) benchmarks/train_step.py
	$(PY) benchmarks/generate.py

clean:
	rm -rf build .pytest_cache
