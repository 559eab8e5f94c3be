# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Every install step lives here: the virtualenv and pip packages, and the Debian
# packages (the dataset, a C compiler for the native runners, Chromium for the
# HTML report test), installed only when missing.
PYTHON    ?= python3
VENV      ?= .venv
BIN       := $(VENV)/bin
ARTIFACTS ?= artifacts
DATA_DIR  := /usr/share/datasets/fashion-mnist
export DEBIAN_FRONTEND := noninteractive

.PHONY: demo test bench venv dataset compiler browser emulator device clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Re-install only when the project's metadata changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# apt-get install the given Debian packages, with one `apt-get update` first (a
# fresh machine needs it). Needs root and apt; otherwise say what is missing.
# A fresh machine often runs unattended upgrades at boot: wait up to 10 minutes
# for their dpkg/apt locks instead of failing at once (apt >= 1.9.11).
APT       := apt-get -q -o DPkg::Lock::Timeout=600
apt_install = if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		$(APT) update && $(APT) install -y $(1); \
	else echo "missing: $(1) (install them with your package manager)"; exit 1; fi

# The dataset: Debian's package where apt exists and the files are missing,
# otherwise the official download into the user cache.
dataset: venv
	@if $(BIN)/edgefm data verify --quiet; then \
		echo "dataset: present and verified"; \
	elif [ ! -f $(DATA_DIR)/t10k-labels-idx1-ubyte.gz ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		$(APT) update && $(APT) install -y dataset-fashion-mnist; \
	else \
		$(BIN)/edgefm data fetch; \
	fi
	$(BIN)/edgefm data verify

# gcc builds the native (Python-free) runners.
compiler:
	@command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || { $(call apt_install,gcc libc6-dev); }

# qemu user-mode emulation runs the native runners on another CPU: an x86 CPU
# without VNNI (-cpu Haswell), whose int8 kernels differ from most hosts'.
emulator:
	@command -v qemu-x86_64-static >/dev/null 2>&1 || { $(call apt_install,qemu-user-static); }

# The device in the loop (`edgefm verify --device`): the aarch64 cross compiler and C library build the
# runners of the emulated Arm64 board (qemu comes with `emulator`); the SSH board's test runs a real
# sshd on 127.0.0.1. The aarch64 runtime libraries come from PyPI at run time, into ~/.cache/edgefm/device.
device: emulator
	@{ command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 && [ -e /usr/aarch64-linux-gnu/lib/libstdc++.so.6 ]; } || { $(call apt_install,gcc-aarch64-linux-gnu libc6-dev-arm64-cross libstdc++6-arm64-cross); }
	@[ -x /usr/sbin/sshd ] || { $(call apt_install,openssh-server); }

# Headless Chromium renders the HTML verification report in its test.
browser:
	@command -v chromium >/dev/null 2>&1 || { $(call apt_install,chromium chromium-driver); }

# The demo's verify also runs every artifact on an emulated Raspberry Pi 4 class board when the
# cross packages are there (`make device` installs them; measured: ~25 s more on 2 shared cores).
DEMO_DEVICE := $(shell command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 && command -v qemu-aarch64-static >/dev/null 2>&1 && echo --device qemu-aarch64:cortex-a72)

demo: dataset compiler
	$(BIN)/edgefm train --artifacts $(ARTIFACTS) --force
	$(BIN)/edgefm export --artifacts $(ARTIFACTS) --format all --quantize all --bundle $(ARTIFACTS)/device-bundle
	$(BIN)/edgefm verify --artifacts $(ARTIFACTS) --native $(DEMO_DEVICE)
	$(BIN)/python -m edgefm.data.demo_image $(ARTIFACTS)/demo-sneaker.png
	$(BIN)/edgefm predict $(ARTIFACTS)/demo-sneaker.png --artifacts $(ARTIFACTS) --top-k 3
	@echo
	@echo "edgefm is installed in $(VENV)/. To run it, either activate the virtualenv:"
	@echo "    source $(VENV)/bin/activate && edgefm --help"
	@echo "or call it by its path:"
	@echo "    $(BIN)/edgefm --help"

# The suite runs on every core, at most 4 (pytest-xdist; each worker imports TensorFlow, ~1 GB): a test file
# stays on one worker (--dist loadfile), so its module fixtures are made once, and the tiny model and its
# exports are made once for all workers (tests/conftest.py: made_once). `make test TEST_WORKERS=0` runs serially.
TEST_WORKERS ?= auto

test: dataset compiler browser emulator device
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile

bench: dataset compiler
	$(BIN)/python -m benchmarks.run --out bench-results

clean:
	rm -rf $(ARTIFACTS) bench-results .pytest_cache
