# beacongrid: `make` builds, `make demo` runs the detector on a simulated
# day, `make test` runs every test including the real-Elasticsearch ones.
SHELL := /bin/bash
GO    ?= go
BIN   := bin
CACHE := .cache
OUT   := out
GOFLAGS_BUILD := -trimpath

.PHONY: all build demo test unit parity integration e2e bench fmt vet clean es-start es-stop

all: build

build: $(BIN)/beacongrid $(BIN)/out_beacongrid.so $(BIN)/flbhost

GO_SOURCES := $(shell find . -name '*.go' -not -path './.cache/*' 2>/dev/null) go.mod go.sum $(wildcard build/model/beacongrid.*)

$(BIN)/beacongrid: $(GO_SOURCES)
	$(GO) build $(GOFLAGS_BUILD) -o $@ ./cmd/beacongrid

$(BIN)/out_beacongrid.so: $(GO_SOURCES)
	$(GO) build $(GOFLAGS_BUILD) -buildmode=c-shared -o $@ ./plugin

$(BIN)/flbhost: build/flbhost/flbhost.c
	@mkdir -p $(BIN)
	gcc -O2 -Wall -Wextra -o $@ $< -ldl -lpthread

include build/train/train.mk

# Training data: simulated days of several seeds and network sizes, through
# `beacongrid features` (build/train/make_features.sh). `make train` retrains
# the embedded model from it; `make parity` then proves leaves == LightGBM.
TRAIN_SEEDS ?= $(shell seq 101 116)
$(FEATURES_CSV): | $(BIN)/beacongrid
	build/train/make_features.sh $(BIN)/beacongrid $(CACHE)/train/sim $@ $(TRAIN_SEEDS)
train: $(FEATURES_CSV)

# ---- demo: one simulated day through the detector, no Elasticsearch ----
DEMO_HOSTS ?= 150
DEMO_SEED  ?= 20261125
demo: $(BIN)/beacongrid
	@mkdir -p $(OUT)/demo
	$(BIN)/beacongrid simulate --hosts $(DEMO_HOSTS) --days 1 --seed $(DEMO_SEED) --out $(OUT)/demo/logs
	$(BIN)/beacongrid replay --alerts $(OUT)/demo/alerts.jsonl --report $(OUT)/demo/report.md \
		$(OUT)/demo/logs/http.log $(OUT)/demo/logs/ssl.log $(OUT)/demo/logs/conn.log
	@echo "alerts: $(OUT)/demo/alerts.jsonl  report: $(OUT)/demo/report.md  truth: $(OUT)/demo/logs/truth.csv"

# ---- tests ----
test: unit parity train-order integration

unit: build
	$(GO) vet ./...
	BEACONGRID_BIN=$(abspath $(BIN)) $(GO) test -count=1 ./...

ES := build/es/es.sh
es-start:
	$(ES) start
es-stop:
	$(ES) stop

# Integration tests run against a real Elasticsearch that this target
# starts and always stops.
integration: build
	$(ES) fetch
	$(ES) start
	set -o pipefail; BEACONGRID_ES_URL=$$($(ES) url) BEACONGRID_BIN=$(abspath $(BIN)) \
		$(GO) test -count=1 -tags integration -timeout 30m ./sidecar/... ./test/... ; rc=$$?; \
		$(ES) stop; exit $$rc

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./cache ./plugin/chunk ./detect ./build/model

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN) $(OUT)

# ---- evaluation (issue 3): held-out simulated days and the real CTU captures ----
# `make eval` writes $(OUT)/eval/report.md: beacongrid and the RITA-style
# baseline side by side. The seeds are not in TRAIN_SEEDS.
EVAL_DATA ?= ../shared/data
EVAL_SIMS ?= 20261125:150:5 901:250:15 902:150:15
eval: $(BIN)/beacongrid
	@mkdir -p $(OUT)/eval
	set -e; dirs=; for s in $(EVAL_SIMS); do IFS=: read seed hosts rate <<< "$$s"; \
		d=$(OUT)/eval/sim-$$seed-$$hosts-hosts; \
		$(BIN)/beacongrid simulate --hosts $$hosts --days 1 --seed $$seed --c2-per-100 $$rate --out $$d >/dev/null; \
		dirs="$$dirs $$d"; done; \
	$(BIN)/beacongrid eval --out $(OUT)/eval/report.md --command "make eval" $$dirs \
		$(EVAL_DATA)/ctu-kovter-219-2 $(EVAL_DATA)/ctu-normal-40-day1

.PHONY: eval bench-score

# Scoring throughput (features + inference per flow, one core; BenchmarkScore
# also runs the reference implementations in the same run).
bench-score:
	$(GO) test -run '^$$' -bench 'FeaturesAndPredict|Score' -benchtime 3s -cpu 1 ./detect

# ---- plugin hot path benchmark (docs/benchmarks.md, "Plugin hot path") ----
# out_beacongrid.so against the same counting on fluent-bit-go's decoder,
# side by side through the C host on real Zeek http records, pinned to one
# core; then the in-process flush benchmark (allocations per flush).
.PHONY: bench-plugin
bench-plugin: $(BIN)/out_beacongrid.so $(BIN)/flbhost
	BEACONGRID_BENCH_PLUGIN=1 BEACONGRID_BIN=$(abspath $(BIN)) taskset -c 0 \
		$(GO) test -count=1 -run '^TestPluginBenchmark$$' -v ./test/plugin; rc=$$?; \
	taskset -c 0 $(GO) test -count=1 -run '^$$' -bench '^BenchmarkFlush' -benchmem -cpu 1 ./plugin/instance \
		&& exit $$rc

# ---- sidecar throughput benchmark (real Elasticsearch, started and stopped here) ----
# BEACONGRID_IT_THROUGHPUT_N alerts (default 60000) drained from the spool;
# prints alerts/s and CPU per alert; fails below BEACONGRID_IT_MIN_RATE (5000).
.PHONY: sidecar-throughput
sidecar-throughput:
	$(ES) fetch
	$(ES) start
	set -o pipefail; BEACONGRID_ES_URL=$$($(ES) url) BEACONGRID_IT_THROUGHPUT=1 \
		$(GO) test -count=1 -tags integration -timeout 20m -run '^TestIntegrationThroughput$$' -v ./sidecar/ ; rc=$$?; \
		$(ES) stop; exit $$rc

# ---- operator rules: evaluation cost per scored flow (wall and CPU time), loader fuzzing ----
.PHONY: bench-rules fuzz-rules
bench-rules:
	@mkdir -p $(CACHE)
	$(GO) test -c -o $(CACHE)/rules.test ./rules
	cd rules && for b in heavy/^no-alert heavy/^alert typical/^no-alert typical/^alert; do \
		( time ../$(CACHE)/rules.test -test.run '^$$' -test.bench "^BenchmarkEval$$/$$b\$$" \
			-test.benchtime 2000000x -test.cpu 1 -test.benchmem ) 2>&1 | grep -E 'Benchmark|user'; \
		echo "  (CPU per op = user / 2000000)"; done
fuzz-rules:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 60s ./rules

# ---- cache (edge state) benchmarks: docs/benchmarks.md "Edge state" ----
.PHONY: bench-cache
# Heavy: several minutes and ~1 GiB; each heavy test runs in its own process
# (RSS is per process).
bench-cache:
	$(GO) test -count=1 -run '^$$' -bench 'BenchmarkObserve($$|Hit|BatchHit|Parallel|NewFlow)' -benchmem -benchtime 2000000x ./cache
	$(GO) test -count=1 -run '^$$' -bench 'BenchmarkObserveReplay' -benchmem -benchtime 23654829x -cpu 1 ./cache
	$(GO) test -count=1 -run '^$$' -bench 'BenchmarkRandomReads' -benchtime 20000000x -cpu 1 ./cache
	$(GO) test -count=1 -run '^$$' -bench 'BenchmarkIdeal/replay' -benchmem -benchtime 23654829x -cpu 1 ./cache
	$(GO) test -count=1 -run '^$$' -bench 'BenchmarkIdeal/uniform' -benchmem -benchtime 4000000x -cpu 1 ./cache
	$(GO) test -count=1 -run '^$$' -bench 'BenchmarkSnapshot|BenchmarkRestore' -cpu 1 -benchtime 3x ./cache
	BEACONGRID_HEAVY=1 $(GO) test -count=1 -timeout 30m -v -run 'TestHeavyMemoryPerFlow' ./cache
	BEACONGRID_HEAVY=1 $(GO) test -count=1 -timeout 60m -v -run 'TestHeavyFlood' ./cache

# ---- plugin hot path: instructions per record by part (cachegrind; needs valgrind) ----
.PHONY: bench-plugin-instructions
bench-plugin-instructions:
	build/bench/instructions.sh .

# ---- flow key (fields): the fast paths held to the plain netip reference ----
.PHONY: fuzz-fields
fuzz-fields:
	$(GO) test -run '^$$' -fuzz '^FuzzFlow$$' -fuzztime 120s ./fields
