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
test: unit parity integration

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
