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

.PHONY: run train study test bench reference formation clean-venv

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

# The formation figures and lines of README "Reference results", from the runs' committed metrics.json.
EXP := $(REF)/experiments
formation: $(VENV)/.installed
	$(BIN)/python scripts/formation.py --out Plots/Induction_Formation.png \
		"recipe (10k words)=$(REF)/MiniGPT-2M" "vocabulary 2,048=$(EXP)/2M-vocab2048-repeats" \
		"vocabulary 2,048, no repeats=$(EXP)/2M-vocab2048-no-repeats" "16 x 128, lr 1e-3=$(EXP)/2M-ctx128-lr1e-3-repeats" \
		"batch 16 x 64=$(EXP)/2M-batch16-repeats"
	$(BIN)/python scripts/formation.py --x chars --out Plots/Induction_Formation_Tokenizers.png \
		--title "Induction-head formation by tokenizer (2M parameters, same recipe)" \
		"word (10,050)=$(REF)/MiniGPT-2M" "char (80)=$(EXP)/tokenizer-char-2M" "BPE (10,050)=$(EXP)/tokenizer-bpe-2M" \
		"char (80), rerun logging prefix matching=$(EXP)/char-2M-rerun"
	$(BIN)/python scripts/formation.py --out Plots/Induction_Formation_Sizes_Seeds.png \
		--title "Induction-head formation across seeds and sizes (the recipe)" \
		"2M, seed 1337 (reference)=$(REF)/MiniGPT-2M" "2M, seed 1=$(REF)/seeds/MiniGPT-2M-seed1" \
		"2M, seed 2=$(REF)/seeds/MiniGPT-2M-seed2" "5.6M, seed 1337 (reference)=$(REF)/MiniGPT-5.6M"

bench: $(VENV)/.installed
	$(BIN)/python bench/bench.py

clean-venv:
	rm -rf $(VENV)
