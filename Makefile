# Two commands do all the setup on a fresh machine:
#   make demo   - install into .venv and run the main job on the built-in default
#   make test   - install into .venv (with test extras), run the linter (ruff) and the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# A local wheel folder (e.g. a CPU build of torch) is used when present.
WHEELS ?= /opt/wheels
PIP_FLAGS = $(if $(wildcard $(WHEELS)),--find-links $(WHEELS),)

.PHONY: demo test install bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q $(PIP_FLAGS) -e ".[all]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/micmatch demo -o demo-output

test: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

# Re-run the speed/accuracy benchmarks; results go to benchmarks/results/ (several minutes).
bench: install
	cd benchmarks && for f in bench_*.py; do echo "== $$f"; ../$(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) demo-output
