# Two commands do all the set-up: `make sanitize` and `make test` each create
# .venv and install the project when it is missing.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch, so a CPU machine never downloads a multi-GB CUDA build.
# A GPU machine installs with `make TORCH=torch` (or any CUDA build it wants).
TORCH  ?= torch==2.13.0+cpu

DATA   ?=
OUT    ?= manifests
JOBS   ?= 0
DEMO   := data/demo
SCAN_ARGS ?=
TRAIN_ARGS ?=

STAMP := $(VENV)/.installed

.PHONY: install sanitize demo train test lint bench clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e '.[train,dev]'
	touch $@

$(DEMO)/demo_truth.csv: | $(STAMP)
	$(BIN)/sanitize demo $(DEMO)

demo: $(DEMO)/demo_truth.csv

ifeq ($(strip $(DATA)),)
sanitize: $(STAMP) $(DEMO)/demo_truth.csv
	$(BIN)/sanitize scan $(DEMO) --out $(OUT) --jobs $(JOBS) $(SCAN_ARGS)
else
sanitize: $(STAMP)
	$(BIN)/sanitize scan $(DATA) --out $(OUT) --jobs $(JOBS) $(SCAN_ARGS)
endif

# Trains on the manifest `make sanitize` just wrote (demo, or DATA=...).
train: sanitize
	$(BIN)/panovlm train --config configs/default.yaml --manifest $(OUT)/clean.parquet $(TRAIN_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check sanitize panovlm tests bench
	$(BIN)/ruff format --check sanitize panovlm tests bench

bench: $(STAMP)
	$(BIN)/python bench/bench_scan.py
	$(BIN)/python bench/bench_train.py

clean-venv:
	rm -rf $(VENV)

# The damage review page of the last scan in OUT (OUT/report.html).
.PHONY: report report-screenshot
report: $(STAMP)
	$(BIN)/sanitize report --out $(OUT) --jobs $(JOBS)

# docs/report.png: a demo tree of its own (with archives), scanned, a repair plan (dry run),
# its review page, rendered by headless Chromium (apt-get install chromium).
REPORT_DEMO := build/report-demo
CHROMIUM    ?= chromium

$(REPORT_DEMO)/data/demo_truth.csv: | $(STAMP)
	rm -rf $(REPORT_DEMO)/data
	$(BIN)/sanitize demo $(REPORT_DEMO)/data

report-screenshot: $(STAMP) $(REPORT_DEMO)/data/demo_truth.csv
	$(BIN)/sanitize scan $(REPORT_DEMO)/data --out $(REPORT_DEMO)/out --jobs $(JOBS) --no-progress
	$(BIN)/sanitize repair --archives $(REPORT_DEMO)/data/archives --out $(REPORT_DEMO)/out </dev/null
	$(BIN)/sanitize report --out $(REPORT_DEMO)/out --jobs $(JOBS) --no-progress
	mkdir -p docs
	profile=$$(mktemp -d) && $(CHROMIUM) --headless --no-sandbox --disable-gpu --disable-quic \
	  --no-first-run --disable-background-networking --disable-component-update --disable-sync \
	  --log-level=3 --user-data-dir=$$profile --hide-scrollbars --window-size=1400,1000 \
	  --screenshot=$(CURDIR)/docs/report.png file://$(CURDIR)/$(REPORT_DEMO)/out/report.html; \
	  status=$$?; rm -rf $$profile; exit $$status
