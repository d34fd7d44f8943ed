# The two commands of the quick start: `make demo` and `make test`. Each sets itself up from the
# lock in requirements/: every dependency set pinned with its hashes by `make lock` (uv), from the
# ranges in pyproject.toml. The ranges are for people who depend on fleetid; the lock is what we
# test, so a commit that passed once installs and passes the same way next month.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
LOCK   := requirements
PIP    := $(BIN)/pip install --quiet --require-hashes
UV     := uv==0.13.9

# The default run leaves out the soak-style tests marked `slow`; CI (CI=true) runs everything.
PYTEST_SELECT := $(if $(filter true,$(CI)),,-m "not slow")

.PHONY: demo test test-latest lock lint typecheck clean fuzz

$(BIN)/fleetid: pyproject.toml $(LOCK)/bootstrap.txt $(LOCK)/runtime.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) -r $(LOCK)/bootstrap.txt
	$(PIP) -r $(LOCK)/runtime.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

# The optional extras are separate locks: python-pkcs11 (SoftHSM2 tests) has wheels; pyscard has
# no Linux wheel, and pip builds it, which needs swig, gcc and the PC/SC headers; tpm2-pytss has
# none either and is built against libtss2-dev. Where one does not install, its tests skip and say
# so (under CI=true they fail instead).
$(VENV)/.test-deps: $(BIN)/fleetid $(LOCK)/test.txt $(LOCK)/pkcs11.txt $(LOCK)/pcsc.txt $(LOCK)/tpm.txt
	$(PIP) -r $(LOCK)/test.txt
	$(PIP) -r $(LOCK)/pkcs11.txt || echo "note: python-pkcs11 did not install; SoftHSM2 tests will skip"
	$(PIP) -r $(LOCK)/pcsc.txt || echo "note: pyscard did not build; PC/SC tests will skip"
	$(PIP) -r $(LOCK)/tpm.txt || echo "note: tpm2-pytss did not build; TPM tests will skip"
	@touch $@

demo: $(BIN)/fleetid
	$(BIN)/fleetid demo

test: $(VENV)/.test-deps
	$(BIN)/pytest -n auto --dist loadgroup $(PYTEST_SELECT) tests

# Every parser fuzzed for FUZZ_SECONDS each (10 minutes by default; `make fuzz FUZZ_SECONDS=30`);
# a crash is written to tests/vectors/fuzz/<harness>/ and the run fails. CI runs a short pass of
# the same harnesses as tests (tests/fuzz/test_fuzz.py).
FUZZ_SECONDS ?= 600
fuzz: $(VENV)/.test-deps
	$(BIN)/python -m tests.fuzz.engine --seconds $(FUZZ_SECONDS)

# Drift watch: the whole suite against the newest releases pyproject.toml allows, in a venv of its
# own, so an upstream release that breaks us is seen here before it reaches a user's install.
test-latest:
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/pip install --quiet --upgrade pip setuptools
	.venv-latest/bin/pip install --quiet --upgrade --upgrade-strategy eager -e '.[test,pkcs11]'
	.venv-latest/bin/pip install --quiet --upgrade -e '.[pcsc]' || echo "note: pyscard did not build"
	.venv-latest/bin/pip install --quiet --upgrade -e '.[tpm]' || echo "note: tpm2-pytss did not build"
	.venv-latest/bin/pip list --format=freeze | grep -v '^fleetid' > .venv-latest/versions.txt
	.venv-latest/bin/pytest -n auto --dist loadgroup tests

# Refreshes every lock from pyproject.toml: all.txt resolves every extra together, and each set is
# resolved under it as a constraint, so one package has one version across the sets.
LOCK_FLAGS := --universal --python-version 3.11 --generate-hashes --custom-compile-command 'make lock' -q
lock:
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet $(UV)
	.venv-lock/bin/uv pip compile pyproject.toml --all-extras --upgrade $(LOCK_FLAGS) -o $(LOCK)/all.txt
	.venv-lock/bin/uv pip compile pyproject.toml $(LOCK_FLAGS) -c $(LOCK)/all.txt -o $(LOCK)/runtime.txt
	for extra in test pkcs11 pcsc tpm; do \
	    .venv-lock/bin/uv pip compile pyproject.toml --extra $$extra $(LOCK_FLAGS) \
	        -c $(LOCK)/all.txt -o $(LOCK)/$$extra.txt || exit 1; \
	done
	.venv-lock/bin/uv pip compile $(LOCK)/bootstrap.in $(LOCK_FLAGS) -o $(LOCK)/bootstrap.txt

lint: $(VENV)/.test-deps
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

typecheck: $(VENV)/.test-deps
	$(BIN)/mypy --strict src

clean:
	rm -rf $(VENV) .venv-latest .venv-lock .pytest_cache .mypy_cache .ruff_cache
