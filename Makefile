# The two commands of the quick start: `make demo` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck clean

$(BIN)/fleetid: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	@touch $@

# pyscard has no Linux wheel: pip builds it, which needs swig, gcc and the PC/SC headers. Where
# those are missing the PC/SC tests skip and say so (under CI=true they fail instead).
$(VENV)/.test-deps: $(BIN)/fleetid
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet -e '.[pcsc]' || echo "note: pyscard did not build; PC/SC tests will skip"
	@touch $@

demo: $(BIN)/fleetid
	$(BIN)/fleetid demo

test: $(VENV)/.test-deps
	$(BIN)/pytest -n auto --dist loadgroup tests

lint: $(VENV)/.test-deps
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(VENV)/.test-deps
	$(BIN)/mypy --strict src

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
