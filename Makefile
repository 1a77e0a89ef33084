# Two commands (see README.md):
#   make run     set up .venv, train the default model, then run the induction-head study on it
#   make test    set up .venv and run the test suite
# Choose another model or a longer run with variables, e.g.
#   make run PRESET=5.6M
#   make run TRAIN_ARGS="--max-steps 6000"
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PRESET ?= 2M
TRAIN_ARGS ?=
NAME := MiniGPT-$(PRESET)

REF := checkpoints/reference

.PHONY: run train study test bench reference clean-venv

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

run: train study

train: $(VENV)/.installed
	$(BIN)/python train.py --preset $(PRESET) --resume $(TRAIN_ARGS)

study: $(VENV)/.installed
	mkdir -p runs
	$(BIN)/papermill InductionHeads.ipynb runs/InductionHeads_$(NAME).ipynb --cwd . \
		-p CHECKPOINT checkpoints/$(NAME)/best.pt -p NAME $(NAME) -p PRIMARY text-val
	@echo "figures in Plots/, executed notebook runs/InductionHeads_$(NAME).ipynb, summary checkpoints/$(NAME)/induction_$(NAME).json"

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

# The committed reference results (README "Reference results"); hours of CPU time.
reference: $(VENV)/.installed
	$(BIN)/python train.py --preset 2M --out-dir $(REF)/MiniGPT-2M --resume --no-progress
	$(BIN)/python train.py --preset 5.6M --out-dir $(REF)/MiniGPT-5.6M --resume --no-progress
	$(BIN)/papermill InductionHeads.ipynb InductionHeads.ipynb --cwd . -p CHECKPOINT $(REF)/MiniGPT-2M/best.pt -p PRIMARY text-val
	mkdir -p results
	$(BIN)/papermill InductionHeads.ipynb results/InductionHeads_MiniGPT-5.6M.ipynb --cwd . \
		-p CHECKPOINT $(REF)/MiniGPT-5.6M/best.pt -p PRIMARY text-val
	$(BIN)/python scripts/results.py $(REF)/MiniGPT-2M $(REF)/MiniGPT-5.6M

bench: $(VENV)/.installed
	$(BIN)/python bench/bench.py

clean-venv:
	rm -rf $(VENV)
