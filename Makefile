# Quick start: `make demo` runs the main job, `make test` runs the tests (`make test-fast`: the quick ones).
# Both create the local virtual environment (.venv) on first use.

VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
UV := python3 -m uv
# One BLAS thread per process: grading and tests run several processes at once,
# and OpenBLAS's spinning threads then slow everything down many times over.
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1

.PHONY: demo test test-fast lab bench data system-packages clean

# Bytecode is compiled at install time: learner code runs where Python cannot write
# its caches (the grading sandbox; machines with PYTHONDONTWRITEBYTECODE set), and
# without them every kernel would compile IPython and the rest again (kernel start
# 1.8 s instead of 0.6 s here).
$(STAMP): pyproject.toml
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@test -x $(PYTHON) || $(UV) venv --quiet $(VENV)
	$(UV) pip install --quiet --compile-bytecode -p $(PYTHON) -e '.[test]'
	@touch $@

# Is the data set where the lookup chain finds it, and intact? (And this project's own
# bytecode up to date, for the same reason as above: an editable install is not compiled.)
data: $(STAMP)
	@$(PYTHON) -m compileall -q course_utils course_grading >/dev/null
	@$(PYTHON) -m course_utils

# Release, autograde the example submissions, feedback, grades table (see README).
demo: $(STAMP) data
	$(PYTHON) -m demo.pipeline

# All tests; the slow files two at a time (pytest-xdist, one file per worker: a file's
# fixtures, e.g. one graded course, are shared by its tests). course-grade's sandboxed kernels
# keep Unix sockets in TMPDIR, which must be short: a fresh folder under /tmp per run.
test: $(STAMP) data system-packages
	@tmp=$$(mktemp -d /tmp/course-test-XXXXXX) && \
	TMPDIR=$$tmp $(PYTHON) -m pytest -n 2 --dist loadfile; status=$$?; rm -rf $$tmp; exit $$status

# The unit tests that run no nbgrader command and no browser (under a minute).
test-fast: $(STAMP) data
	$(PYTHON) -m pytest -m fast

# In the course folder, so that nbgrader's extensions (formgrader) find nbgrader_config.py;
# --allow-root only when run as root (Jupyter refuses root without it). LAB_OPTIONS: more options.
lab: $(STAMP) data
	cd notebooks && exec $(CURDIR)/$(VENV)/bin/jupyter lab \
	  $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_OPTIONS)

bench: $(STAMP) data
	$(PYTHON) benchmarks/bench_training.py
	$(PYTHON) benchmarks/bench_widgets.py

# The browser test needs Debian's Chromium and sandboxed grading needs bubblewrap;
# installed when missing and we may.
system-packages:
	@missing=""; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "Missing Debian packages:$$missing (install them with apt-get as root)"; exit 1; \
	  fi; \
	fi

clean:
	rm -rf $(VENV) notebooks/release notebooks/submitted notebooks/autograded notebooks/feedback notebooks/gradebook.db
