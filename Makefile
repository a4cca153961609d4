# The two commands the README opens with: `make demo` and `make test`.
.PHONY: setup demo test lint bench clean

VENV := .venv
PY := $(VENV)/bin/python

setup:
	@scripts/bootstrap.sh

demo: setup
	$(PY) -m hwsim.demo

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) -m bench

clean:
	rm -rf .demo .pytest_cache
