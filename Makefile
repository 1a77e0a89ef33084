# Two commands (see README.md):
#   make run     set up .venv, train the default model, then run the induction-head study on it
#   make test    set up .venv and run the test suite
# make help lists every target. Another model: make run PRESET=5.6M (a preset is a complete run, config.PRESETS).
# Any train.py flag goes in TRAIN_ARGS, e.g. make run TRAIN_ARGS="--n-embd 64": that run is named after what differs
# from its preset (checkpoints/MiniGPT-2M-n_embd=64/), and `make study` follows it.
PYTHON ?= python3
VENV ?= .venv
PRESET ?= 2M
TRAIN_ARGS ?=
RUN ?=
# No variable a user sets reaches a shell or make as syntax: a recipe takes its raw text ($(value ...), never
# expanded) as one single-quoted argument, and the script it calls checks it (a run name, a path, an experiment).
# TRAIN_ARGS is the one list: train.py splits it as a shell would (--args), without running one.
quote = '$(subst ','"'"',$(value $1))'
# make exports a command-line variable to the recipes' environment by expanding it (running any $(shell ...) in it).
# The defaults above come first: unexport defines a variable not yet defined, as empty, and a later ?= keeps that.
unexport PYTHON VENV PRESET TRAIN_ARGS SEEDS RUN AS NAME OVERWRITE FINAL RECORDS_ONLY STUDY TO
# PYTHON and VENV name the toolchain and appear in targets, which make expands while reading this file: plain paths only
$(foreach v,PYTHON VENV,$(if $(shell printf '%s' $(call quote,$v) | LC_ALL=C grep -qx '[A-Za-z0-9_./+=-]*' || echo bad),\
	$(error $v must be a plain path (letters, digits and _ . / + = -), got: $(value $v))))
BIN := $(VENV)/bin
AS :=  # make's built-in AS is the assembler ("as"): promote derives the folder unless AS is given
REF := checkpoints/reference
FIG := results/figures

.PHONY: help run train study test test-interop bench export promote reference exp screenshot reference-models notebooks \
	clean-venv

help:  ## print every target with one line
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-zA-Z0-9_.-]+:[^=]*## / {printf "  make %-20s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

run: train study  ## train PRESET (with TRAIN_ARGS), then study it

train: $(VENV)/.installed  ## train PRESET into checkpoints/<run>/ (resumes it if it exists); SEEDS="1337 1 2": stacked
	$(BIN)/python train.py --preset $(call quote,PRESET) --resume --args $(call quote,TRAIN_ARGS) \
		$(if $(value SEEDS),--seeds $(call quote,SEEDS))

# Figures and the attention page in Plots/<run>/; summary and executed notebook in checkpoints/<run>/.
study: $(VENV)/.installed  ## study the run trained last, or RUN=<name or checkpoint path>
	$(BIN)/python scripts/study_notebook.py $(if $(value RUN),$(call quote,RUN))

# One pytest worker per core, one thread each; an idle worker takes tests queued for a busy one (worksteal).
test: $(VENV)/.installed  ## the test suite (CPU, minutes)
	$(BIN)/python -m pytest -q -n auto --dist worksteal

# TransformerLens export and the attention page in a real browser (tests marked interop). The extras are large
# (requirements-interop.txt); the default pins are their constraints, so torch stays the CPU build.
$(VENV)/.interop-installed: $(VENV)/.installed requirements-interop.txt
	$(BIN)/python -m pip install -q -c requirements.txt -r requirements-interop.txt
	touch $@

test-interop: $(VENV)/.interop-installed  ## TransformerLens export and the attention page in Chromium
	@test -x /usr/bin/chromium || { echo "error: the browser test needs Debian's Chromium: apt-get install chromium"; exit 1; }
	$(BIN)/python -m pytest -q -m interop

# A run as a Hugging Face GPT-2 folder that transformers and nnsight load with no code of ours (interop.to_hf).
export: $(VENV)/.interop-installed  ## a run as a Hugging Face GPT-2 folder (RUN=<name or checkpoint> TO=<new folder>)
	@$(if $(and $(value RUN),$(value TO)),true,echo "usage: make export RUN=<run name or checkpoint> TO=<new folder>"; exit 2)
	$(BIN)/python scripts/export_hf.py $(call quote,RUN) $(call quote,TO)

bench: $(VENV)/.installed  ## the speed table (about 18 min; bench/bench.py --quick: 2 min)
	$(BIN)/python bench/bench.py --profile

# ---- the committed reference results (results/), never written by the targets above ----
# They are read-only to every other command (checkpoint.output_path): only these targets may write there.
reference promote exp notebooks: export MINIGPT_WRITE_REFERENCE = 1

# A finished run into checkpoints/reference/<experiment>/<run> (or AS): weights (no optimizer state), config, vocabulary, metrics, sample.
promote: $(VENV)/.installed  ## copy a finished run (RUN=<its folder>) into checkpoints/reference/ (AS=, OVERWRITE=1, FINAL=1, RECORDS_ONLY=1)
	@$(if $(value RUN),true,echo "usage: make promote RUN=<run folder> [AS=<folder under $(REF)/>, default <experiment>/<run> for runs/<experiment>/<run>]"; exit 2)
	$(BIN)/python scripts/promote.py $(call quote,RUN) $(if $(value AS),$(call quote,AS)) $(if $(value OVERWRITE),--overwrite) \
		$(if $(value FINAL),--final) $(if $(value RECORDS_ONLY),--records-only)

# Every study of committed weights that an experiment declares (experiments/*.py, STUDIES: the reference models,
# tokenizers, curriculum, seeds, original, verdicts; about 45 minutes of 2 cores), then every experiment's report:
# the summaries, figures and tables in results/. The reference numbers are computed in fp32; a study of your run
# defaults to bf16 where that is fast (equal within the CIs, tested).
reference: $(VENV)/.installed  ## regenerate every committed study, figure and table in results/ (about an hour)
	$(BIN)/python -m experiments all study
	$(BIN)/python -m experiments all report

# The screenshot in Plots/: the 2M reference model's attention page in headless Chromium (under a minute).
screenshot: $(VENV)/.interop-installed  ## the attention page's screenshot in Plots/ (headless Chromium)
	$(BIN)/python -m experiments reference screenshot

# The reference models themselves: hours of CPU, one thread each as they were trained (a run is bit for bit
# reproducible at one thread count), into runs/reference/; then make promote RUN=runs/reference/MiniGPT-2M OVERWRITE=1.
reference-models: $(VENV)/.installed  ## retrain the 2M and 5.6M reference models into runs/reference/ (hours)
	$(BIN)/python -m experiments reference run

# Each experiment lives in experiments/<name>.py with its runs, criterion, figure and report (python -m experiments
# lists them). Its report reads the committed runs in checkpoints/reference/ and draws into results/figures/ (seconds
# to a minute); RUN=1 trains its runs into runs/<name>/ instead (one thread each; hours), for make promote.
exp: $(VENV)/.installed  ## an experiment's report (NAME=<experiment>), with RUN=1 its training runs, STUDY=1 its studies
	@$(if $(value NAME),true,$(BIN)/python -m experiments; echo "usage: make exp NAME=<experiment> [RUN=1 | STUDY=1]"; exit 2)
	$(BIN)/python -m experiments $(call quote,NAME) $(if $(value RUN),run,$(if $(value STUDY),study,report))

# The executed notebooks for readers who only browse: MiniGPT.ipynb trains the 2M preset into runs/ (~16 min);
# InductionHeads.ipynb studies each reference model, writing the same summary as its registry study (~10 min).
notebooks: $(VENV)/.installed  ## executed copies of both notebooks in results/ (~25 min)
	$(BIN)/python -m experiments reference notebooks

clean-venv:  ## remove .venv
	rm -rf $(call quote,VENV)
