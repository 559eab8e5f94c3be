# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARTIFACTS ?= artifacts
DATA_FILES := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: demo test bench venv dataset clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Re-install only when the project's metadata changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# The dataset: Debian's package where apt exists and the files are missing,
# otherwise the official download into the user cache.
dataset: venv
	@if $(BIN)/edgefm data verify --quiet >/dev/null 2>&1; then \
		echo "dataset: present and verified"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && [ ! -f $(DATA_FILES) ]; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -q && apt-get install -y -q dataset-fashion-mnist; \
	else \
		$(BIN)/edgefm data fetch; \
	fi
	$(BIN)/edgefm data verify

# gcc builds the native runners (issue: Python-free runtime check).
compiler:
	@command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || { \
		export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt-get install -y -q gcc libc6-dev; }

demo: dataset compiler
	$(BIN)/edgefm train --artifacts $(ARTIFACTS)
	$(BIN)/edgefm export --artifacts $(ARTIFACTS) --format all --quantize all
	$(BIN)/edgefm verify --artifacts $(ARTIFACTS) --native
	$(BIN)/python -m edgefm.demo_image $(ARTIFACTS)/demo-sneaker.png
	$(BIN)/edgefm predict $(ARTIFACTS)/demo-sneaker.png --artifacts $(ARTIFACTS) --top-k 3

test: dataset compiler
	$(BIN)/python -m pytest -q

bench: dataset compiler
	$(BIN)/python -m benchmarks.run --out bench-results

clean:
	rm -rf $(ARTIFACTS) bench-results .pytest_cache
