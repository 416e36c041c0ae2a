# Model training and LightGBM/Go parity. Included by the main Makefile:
#
#     include build/train/train.mk
#
# Targets
#   $(VENV)/.ok  Python venv with the exact pins of build/train/requirements.txt
#                (recreated when that file changes; `venv` is an alias).
#   train        Train on $(FEATURES_CSV); writes build/model/beacongrid.{txt,json},
#                the model embedded by package build/model. The main Makefile
#                owns the rule that makes $(FEATURES_CSV) (bin/beacongrid
#                features ...) and hooks it in with `train: $(FEATURES_CSV)`.
#   train-synth  Bootstrap only: train the default model on synthetic rows from
#                build/train/synth_features.py (how the first model was made).
#   parity       Re-score rows with LightGBM running live in the venv, then run
#                the Go parity test against those fresh predictions, for the
#                committed test model and for the default model.
#   train-order  Check that train.py's model does not depend on the CSV's row
#                order: trains on synthetic rows and on the same rows shuffled,
#                and fails unless the two model files are byte for byte equal.
#   parity-testdata  Regenerate the committed parity test model and CSV
#                (build/model/testdata); only when the format or pins change.
#
# Recipes are POSIX sh, need no input, and run from the repository root.

BG_TRAIN_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
BG_MODEL_DIR := $(patsubst %/,%,$(dir $(BG_TRAIN_DIR)))/model

PYTHON ?= python3
GO ?= go
VENV ?= .cache/venv
FEATURES_CSV ?= .cache/train/features.csv
TRAIN_SEED ?= 1
TARGET_FPR ?= 0.0001
# Extra train.py flags. Beacon rows weigh 2 (train.py's default is 5): on the
# training set with the simulator's training mix, 5 ranked one host's
# exact-period benign services (CTU-Normal-40) above the threshold it
# calibrated. At most 200 trees: early stopping did not stop before 300, and
# 300 trees cost about 1.6x the prediction time of 200 (docs/model.md).
TRAIN_ARGS ?= --early-stopping 50 --pos-weight 2 --num-boost-round 200
SYNTH_CSV ?= .cache/train/synth-features.csv
SYNTH_FLOWS ?= 60000
SYNTH_SEED ?= 7
PARITY_DIR ?= .cache/parity
PARITY_PROBE_ROWS ?= 2000
PARITY_SEED ?= 2
# Optional features CSV whose rows the default model's live parity run also
# scores (its feature columns must match the default model).
PARITY_INPUT ?=

BG_PY := $(VENV)/bin/python
BG_PIP_ENV := PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

.PHONY: venv train train-synth train-order parity parity-testdata

venv: $(VENV)/.ok

$(VENV)/.ok: $(BG_TRAIN_DIR)/requirements.txt
	@echo "venv: creating $(VENV) with $$($(PYTHON) --version 2>&1)"
	$(PYTHON) -m venv --clear $(VENV)
	$(BG_PIP_ENV) $(BG_PY) -m pip install --quiet --no-deps --only-binary=:all: -r $(BG_TRAIN_DIR)/requirements.txt
	$(BG_PIP_ENV) $(BG_PY) -m pip check
	$(BG_PY) -c 'import lightgbm, numpy; assert lightgbm.__version__ == "3.3.5", lightgbm.__version__; print("venv: lightgbm", lightgbm.__version__, "numpy", numpy.__version__)'
	touch $@

train: $(VENV)/.ok
	@test -f "$(FEATURES_CSV)" || { echo "train: $(FEATURES_CSV) not found: make it with bin/beacongrid features, or pass FEATURES_CSV=path (make train-synth bootstraps on synthetic data)" >&2; exit 1; }
	$(BG_PY) $(BG_TRAIN_DIR)/train.py --features $(FEATURES_CSV) --seed $(TRAIN_SEED) --target-fpr $(TARGET_FPR) \
		--out-model $(BG_MODEL_DIR)/beacongrid.txt --out-meta $(BG_MODEL_DIR)/beacongrid.json $(TRAIN_ARGS)
	@echo "train: now run 'make parity' and commit $(BG_MODEL_DIR)/beacongrid.txt and beacongrid.json"

train-synth: $(VENV)/.ok
	@mkdir -p $(dir $(SYNTH_CSV))
	$(BG_PY) $(BG_TRAIN_DIR)/synth_features.py --flows $(SYNTH_FLOWS) --seed $(SYNTH_SEED) --out $(SYNTH_CSV)
	$(MAKE) --no-print-directory train FEATURES_CSV=$(SYNTH_CSV)

parity: $(VENV)/.ok
	@mkdir -p $(PARITY_DIR)
	$(BG_PY) $(BG_TRAIN_DIR)/predict.py --model $(BG_MODEL_DIR)/testdata/parity_model.txt \
		--input $(BG_MODEL_DIR)/testdata/parity.csv --probe-rows $(PARITY_PROBE_ROWS) --seed $(PARITY_SEED) \
		--out $(PARITY_DIR)/parity-test-model.csv
	BEACONGRID_PARITY_MODEL=$(abspath $(BG_MODEL_DIR)/testdata/parity_model.txt) \
	BEACONGRID_PARITY_CSV=$(abspath $(PARITY_DIR)/parity-test-model.csv) \
		$(GO) test -count=1 -run '^TestParity$$' -v ./$(BG_MODEL_DIR)
	$(BG_PY) $(BG_TRAIN_DIR)/predict.py --model $(BG_MODEL_DIR)/beacongrid.txt \
		$(if $(PARITY_INPUT),--input $(PARITY_INPUT)) --edge-rows --probe-rows $(PARITY_PROBE_ROWS) --seed $(PARITY_SEED) \
		--out $(PARITY_DIR)/parity-default-model.csv
	BEACONGRID_PARITY_MODEL=$(abspath $(BG_MODEL_DIR)/beacongrid.txt) \
	BEACONGRID_PARITY_CSV=$(abspath $(PARITY_DIR)/parity-default-model.csv) \
		$(GO) test -count=1 -run '^TestParity$$' -v ./$(BG_MODEL_DIR)

parity-testdata: $(VENV)/.ok
	@mkdir -p $(PARITY_DIR)
	$(BG_PY) $(BG_TRAIN_DIR)/synth_features.py --flows 8000 --seed 11 --out $(PARITY_DIR)/synth-train.csv
	$(BG_PY) $(BG_TRAIN_DIR)/synth_features.py --flows 200 --seed 12 --out $(PARITY_DIR)/synth-rows.csv
	$(BG_PY) $(BG_TRAIN_DIR)/train.py --features $(PARITY_DIR)/synth-train.csv --num-boost-round 60 --early-stopping 0 \
		--version-prefix parity-test --out-model $(BG_MODEL_DIR)/testdata/parity_model.txt --out-meta $(BG_MODEL_DIR)/testdata/parity_model.json
	$(BG_PY) $(BG_TRAIN_DIR)/predict.py --model $(BG_MODEL_DIR)/testdata/parity_model.txt --input $(PARITY_DIR)/synth-rows.csv \
		--edge-rows --probe-rows 600 --seed 1 --out $(BG_MODEL_DIR)/testdata/parity.csv

ORDER_DIR ?= .cache/train-order
train-order: $(VENV)/.ok
	@mkdir -p $(ORDER_DIR)
	$(BG_PY) $(BG_TRAIN_DIR)/synth_features.py --flows 3000 --seed 13 --out $(ORDER_DIR)/rows.csv
	$(BG_PY) -c 'import random, sys; h, *r = open(sys.argv[1]).readlines(); random.Random(5).shuffle(r); open(sys.argv[2], "w").writelines([h] + r)' \
		$(ORDER_DIR)/rows.csv $(ORDER_DIR)/shuffled.csv
	cmp -s $(ORDER_DIR)/rows.csv $(ORDER_DIR)/shuffled.csv && { echo "train-order: shuffle left the rows in place" >&2; exit 1; } || true
	for f in rows shuffled; do SOURCE_DATE_EPOCH=0 $(BG_PY) $(BG_TRAIN_DIR)/train.py --features $(ORDER_DIR)/$$f.csv \
		--num-boost-round 40 --early-stopping 0 --decreasing '' --target-fpr 0.01 \
		--out-model $(ORDER_DIR)/$$f.txt --out-meta $(ORDER_DIR)/$$f.json >/dev/null || exit 1; done
	cmp $(ORDER_DIR)/rows.txt $(ORDER_DIR)/shuffled.txt
	@echo "train-order: the same rows in another order train the same model ($$(sha256sum < $(ORDER_DIR)/rows.txt | cut -c1-12))"
