# Two commands do all the set-up: `make sanitize` and `make test` each create
# .venv and install the project when it is missing.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch, so a CPU machine never downloads a multi-GB CUDA build.
# A GPU machine installs with `make TORCH=torch` (or any CUDA build it wants).
TORCH  ?= torch==2.13.0+cpu

DATA   ?=
CSV    ?=
OUT    ?= manifests
JOBS   ?= 0
DEMO   := data/demo
SCAN_ARGS ?=
TRAIN_ARGS ?=

# Without DATA, the embedded demo tree (built once).
ROOT     := $(if $(strip $(DATA)),$(DATA),$(DEMO))
ROOT_DEP := $(if $(strip $(DATA)),,$(DEMO)/demo_truth.csv)
csv_args  = $(foreach table,$(1),--csv $(table))
# make train's annotation tables: CSV=..., or the demo's own.
TRAIN_CSV := $(if $(strip $(CSV)),$(CSV),$(if $(strip $(DATA)),,$(DEMO)/annotations/demo.csv))

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

# The tree's images, or with CSV="a.csv b.csv" the rows of those annotation tables.
sanitize: $(STAMP) $(ROOT_DEP)
	$(BIN)/sanitize scan $(ROOT) --out $(OUT) --jobs $(JOBS) $(call csv_args,$(CSV)) $(SCAN_ARGS)

# Trains on the annotation rows whose images are clean: the tables are scanned into
# $(OUT)/train (every verdict is reused from `make sanitize`), then panovlm trains on it.
train: sanitize
	$(BIN)/sanitize scan $(ROOT) --out $(OUT)/train --jobs $(JOBS) $(call csv_args,$(TRAIN_CSV)) \
	  --no-progress $(SCAN_ARGS)
	$(BIN)/panovlm train --config configs/default.yaml --manifest $(OUT)/train/clean.parquet \
	  $(TRAIN_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check sanitize panovlm tests bench
	$(BIN)/ruff format --check sanitize panovlm tests bench

bench: $(STAMP)
	$(BIN)/python bench/bench_scan.py
	$(BIN)/python bench/bench_incremental.py
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_report.py
	$(BIN)/python bench/bench_repair.py

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

# Disk hygiene. `make clean-cache` prints the plan; `make clean-cache YES=1` acts on it.
# CLEAN_ARGS passes more (categories, roots, --days N, -v): see `panovlm clean --help`.
CLEAN_ARGS ?=
.PHONY: clean-cache disk

clean-cache: $(STAMP)
	$(BIN)/panovlm clean $(if $(filter 1,$(YES)),--yes,--dry-run) $(CLEAN_ARGS)

disk: $(STAMP)
	$(BIN)/panovlm disk
