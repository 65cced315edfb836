# Two commands on a fresh machine: `make run` (the app on the bundled demo model) and `make test`.
# Both create .venv in the repo root when missing and install everything first.
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: run test lint test-slow screenshots clean-venv

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv .venv
	# The CPU wheel of torch, pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m app

test: $(STAMP)
	$(PY) -m ruff check . && $(PY) -m ruff format --check .
	QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1 $(PY) -m pytest -q

# Applies ruff's fixes and formatting (what `make test` checks).
lint: $(STAMP)
	$(PY) -m ruff check --fix . && $(PY) -m ruff format .

test-slow: $(STAMP)
	QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m slow

screenshots: $(STAMP)
	$(PY) scripts/screenshots.py

clean-venv:
	rm -rf .venv
