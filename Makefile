# The two commands a fresh machine needs: `make demo` and `make test`.
# Each creates .venv and installs the project when pyproject.toml is newer than the last install:
# `make demo` the runtime dependencies only, `make test` / `lint` / `bench` the dev extras as well. Separate stamps,
# so `make demo` then `make test` adds the extras, and an edit to pyproject.toml re-installs whichever is asked for.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP     := $(VENV)/.installed-dev

.PHONY: demo test lint bench clean

# The whole suite (plain `make test`, as CI runs it) measures branch coverage of pipeline and collectors and fails
# below this floor ([tool.coverage.*] in pyproject.toml). A run of a subset (PYTEST_ARGS given) is not measured,
# unless COVERAGE=1 asks for the report (without the floor).
COVERAGE_FLOOR := 92
ifeq ($(strip $(PYTEST_ARGS)),)
COVERAGE_ARGS := --cov --cov-report=term:skip-covered --cov-fail-under=$(COVERAGE_FLOOR)
else ifeq ($(COVERAGE),1)
COVERAGE_ARGS := --cov --cov-report=term:skip-covered
endif

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The dev install includes the runtime one, so it refreshes both stamps.
$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@ $(RUNTIME_STAMP)

demo: $(RUNTIME_STAMP)
	$(BIN)/sieve demo $(ARGS)

test: $(DEV_STAMP)
	$(BIN)/python -m pytest $(COVERAGE_ARGS) $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check pipeline collectors tests bench dashboards examples
	$(BIN)/ruff format --check pipeline collectors tests bench dashboards examples
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(DEV_STAMP)
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) .sieve .pytest_cache .mypy_cache .ruff_cache
