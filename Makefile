# The README's two set-up commands: `make demo` and `make test`.
# Each creates ./.venv and installs featx into it when needed (offline-capable except for PyPI).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.featx-installed
PYTEST_ARGS ?=
# pytest-xdist workers (one per core); PYTEST_WORKERS=0 runs the suite in one process
PYTEST_WORKERS ?= auto

.PHONY: demo test lint install clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]" -c constraints.txt
	# the 3D sources' own code, for the tests that compare featx with it: their packages pin old versions of
	# half of PyPI (scipy, pydantic, jupyter), so only the code is installed; MONAI comes with the test extra
	$(BIN)/python -m pip install --quiet --no-deps foundation-cancer-image-biomarker==1.0.0 lighter-zoo==0.1.3
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/featx demo

# The architecture (import-linter contracts in pyproject.toml) and the code style, checked before the tests.
lint: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check featx tests benchmarks docs/recipes
	$(BIN)/ruff format --check featx tests benchmarks docs/recipes

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
test: lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests"; exit 1; fi; exit $$rc

clean:
	rm -rf $(VENV) featx-demo .pytest_cache
