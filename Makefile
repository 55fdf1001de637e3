# The two commands of the README:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

# Writes the bundled demo stems to demo/ and mixes them with the shipped DMC.
demo: install
	$(BIN)/mixdown demo -o demo
	$(BIN)/mixdown mix demo/stems -o demo/mix.wav --method dmc

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/render_speed.py

clean:
	rm -rf $(VENV) demo build *.egg-info
