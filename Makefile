# Quick start: `make demo` runs the main job, `make test` runs the tests (`make test-fast`: the quick ones).
# Both create the local virtual environment (.venv) on first use.

VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The hub's own environment (see `make hub` below); the hub test runs the hub with it.
HUB_VENV := .venv-hub
HUB_STAMP := $(HUB_VENV)/.installed
UV := python3 -m uv
# One BLAS thread per process: grading and tests run several processes at once,
# and OpenBLAS's spinning threads then slow everything down many times over.
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1

.PHONY: demo test test-fast lab bench data system-packages clean hub hub-assets

# Bytecode is compiled at install time: learner code runs where Python cannot write
# its caches (the grading sandbox; machines with PYTHONDONTWRITEBYTECODE set), and
# without them every kernel would compile IPython and the rest again (benchmarks/README.md).
# overrides.txt leaves out a dependency that only costs time (see there).
$(STAMP): pyproject.toml overrides.txt
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@test -x $(PYTHON) || $(UV) venv --quiet $(VENV)
	$(UV) pip install --quiet --compile-bytecode --override overrides.txt -p $(PYTHON) -e '.[test]'
	@touch $@

# Is the data set where the lookup chain finds it, and intact? (And this project's own
# bytecode up to date, for the same reason as above: an editable install is not compiled.)
data: $(STAMP)
	@$(PYTHON) -m compileall -q course_utils course_grading >/dev/null
	@$(PYTHON) -m course_utils

# Release, autograde the example submissions, feedback, grades table (see README).
# With npm, MathJax is installed as for the hub (hub-assets), so that the feedback pages
# show their maths opened from disk with no internet; without npm they load it from a CDN.
NPM := $(shell command -v npm)
demo: $(STAMP) data $(if $(NPM),hub-assets)
	$(PYTHON) -m demo.pipeline

# All tests, four files at a time (pytest-xdist, one file per worker: a file's fixtures,
# e.g. one graded course, are shared by its tests). Files wait on kernels, browsers and the
# hub, so four keep the two cores busier than three; the four longest start first
# (tests/conftest.py; --no-loadscope-reorder, or xdist hands out the files with the most
# tests first and the one-test hub file started last). course-grade's sandboxed kernels
# keep Unix sockets in TMPDIR, which must be short: a fresh folder under /tmp per run.
test: $(STAMP) $(HUB_STAMP) data system-packages hub-assets
	@tmp=$$(mktemp -d /tmp/course-test-XXXXXX) && \
	TMPDIR=$$tmp $(PYTHON) -m pytest -n 4 --dist loadfile --no-loadscope-reorder; status=$$?; rm -rf $$tmp; exit $$status

# The unit tests that run no nbgrader command and no browser (under a minute).
test-fast: $(STAMP) data
	$(PYTHON) -m pytest -m fast

# In the course folder, so that nbgrader's extensions (formgrader) find nbgrader_config.py;
# --allow-root only when run as root (Jupyter refuses root without it). LAB_OPTIONS: more options.
lab: $(STAMP) data
	cd notebooks && exec $(CURDIR)/$(VENV)/bin/jupyter lab \
	  $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_OPTIONS)

# The training benchmark compares one BLAS thread with all of them, so BLAS starts with all.
bench: $(STAMP) data
	env -u OPENBLAS_NUM_THREADS -u OMP_NUM_THREADS $(PYTHON) benchmarks/bench_training.py
	$(PYTHON) benchmarks/bench_widgets.py

# The browser tests need Debian's Chromium, sandboxed grading needs bubblewrap and the
# hub test npm (the proxy and MathJax);
# installed when missing and we may.
system-packages:
	@missing=""; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "Missing Debian packages:$$missing (install them with apt-get as root)"; exit 1; \
	  fi; \
	fi

# The course's JupyterHub, for a try-out on this machine (see hub/README.md).
# Its environment is its own: every learner's server and kernel runs the hub's Python,
# so it is made from an interpreter that every OS account can execute (the OS's
# /usr/bin/python3), never from one under root's home such as pyenv's.
HUB_BASE_PYTHON ?= $(firstword $(wildcard /usr/bin/python3 /usr/local/bin/python3))
HUB_PORT ?= 8000

$(HUB_STAMP): pyproject.toml overrides.txt
	@test -n "$(HUB_BASE_PYTHON)" || { echo "No Python for every account: install Debian's python3 (apt-get install python3) or set HUB_BASE_PYTHON=/opt/.../python3"; exit 1; }
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@test -x $(HUB_VENV)/bin/python || $(UV) venv --quiet --python $(HUB_BASE_PYTHON) $(HUB_VENV)
	$(UV) pip install --quiet --compile-bytecode --override overrides.txt -p $(HUB_VENV)/bin/python -e '.[test]'
	@touch $@

# The proxy and MathJax, from npm, into hub/node_modules (not committed).
hub-assets: hub/node_modules/.installed
hub/node_modules/.installed: hub/package.json | $(if $(NPM),,system-packages)
	cd hub && npm install --no-audit --no-fund --loglevel=error
	@touch $@

hub: $(HUB_STAMP) hub-assets data
	@echo "JupyterHub for the course: http://127.0.0.1:$(HUB_PORT)/"
	@echo "Log in as instructor (formgrader, course folder notebooks/) or as a learner: alice, bob."
	@echo "Password for all: backprop. State (homes, exchange, hub database): hub/state/. Stop with Ctrl+C."
	COURSE_HUB_PORT=$(HUB_PORT) $(HUB_VENV)/bin/jupyterhub -f hub/jupyterhub_config.py

clean:
	rm -rf $(VENV) $(HUB_VENV) hub/state notebooks/release notebooks/submitted notebooks/autograded notebooks/feedback notebooks/gradebook.db
