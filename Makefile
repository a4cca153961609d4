# The two commands the README opens with: `make demo` and `make test`.
.PHONY: vendor-js setup demo test test-slow lint typecheck bench lock pi-check pi-check-arm64 clean

VENV := .venv
PY := $(VENV)/bin/python

setup:
	@scripts/bootstrap.sh

demo: setup
	$(PY) -m hwsim.demo

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -m "not slow"

# The long tests (SIGKILL series, whole decode sets, the install, a fleet under faults): CI runs
# them after `make test` (.ci/run).
test-slow: setup
	$(PY) -m pytest -q -m slow

lint: setup
	$(VENV)/bin/ruff check .

typecheck: setup
	$(VENV)/bin/mypy

bench: setup
	$(PY) -m bench

# Refresh the hashed dependency locks (requirements/) from pyproject.toml.
lock: setup
	scripts/lock.sh

# Re-vendor the member page's QR decoder from npm (the result is committed; needs npm).
vendor-js:
	scripts/vendor-js.sh

# The install script and the unit, booted under systemd in a Debian bookworm container (root).
pi-check: setup
	python3 scripts/pi_check.py

pi-check-arm64: setup
	python3 scripts/pi_check.py --arch arm64

clean:
	rm -rf .demo .pytest_cache
