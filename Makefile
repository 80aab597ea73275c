# GPT-1 from scratch. `make course` runs the book; `make test` runs every test; `make book` builds
# its website.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
JUPYTER_BOOK ?= $(VENV)/bin/jupyter-book
BOOK_DIR ?= build/book

.PHONY: install course test lab export links benchmarks gpu-check book book-screenshot clean

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

# Every Colab badge and install cell, from pyproject.toml's repository URL and [tool.gpt1_book] ref.
links: $(STAMP)
	$(PY) tools/links.py

# The book as a website (Jupyter Book 1, book/_config.yml and book/_toc.yml), from the notebooks'
# committed outputs: nothing runs. Every page is rebuilt (--all), so the log holds all warnings.
book: $(STAMP)
	@mkdir -p $(BOOK_DIR)
	@$(JUPYTER_BOOK) build . --all --config book/_config.yml --toc book/_toc.yml \
		--path-output $(BOOK_DIR) > $(BOOK_DIR)/build.log 2>&1 || { cat $(BOOK_DIR)/build.log; exit 1; }
	@grep -E "WARNING|ERROR" $(BOOK_DIR)/build.log || true
	@echo "book: $(BOOK_DIR)/_build/html/index.html (log: $(BOOK_DIR)/build.log)"

# The README's picture of the site: one chapter in headless Chromium (offline, as root too).
book-screenshot: book
	chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--user-data-dir=$$(mktemp -d) --hide-scrollbars --window-size=1280,900 \
		--host-resolver-rules="MAP * ~NOTFOUND" --screenshot=book/screenshot.png \
		file://$(CURDIR)/$(BOOK_DIR)/_build/html/notebooks/02_attention.html

benchmarks: $(STAMP)
	$(PY) benchmarks/train_step.py
	$(PY) benchmarks/generate.py

# On a CUDA GPU, meant to finish within 6 minutes (a T4 included): the CUDA-only tests, memory,
# tokens/s and MFU of the t4 and a10g presets, torch.compile, the SDPA kernel, resume on CUDA;
# writes benchmarks/results/gpu.md. Without CUDA it says so and exits 0.
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py

clean:
	rm -rf build .pytest_cache
