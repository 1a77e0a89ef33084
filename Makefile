# Two commands (see README.md):
#   make run     set up .venv, train the default model, then run the induction-head study on it
#   make test    set up .venv and run the test suite
# make help lists every target. Another model: make run PRESET=5.6M (a preset is a complete run, config.PRESETS).
# Any train.py flag goes in TRAIN_ARGS, e.g. make run TRAIN_ARGS="--n-embd 64": that run is named after what differs
# from its preset (checkpoints/MiniGPT-2M-n_embd=64/), and `make study` follows it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PRESET ?= 2M
TRAIN_ARGS ?=
RUN ?=
REF := checkpoints/reference
EXP := $(REF)/experiments
CUR := $(REF)/curriculum
NAT := $(REF)/natural-text
HELD := $(REF)/held-out
DOSE := $(REF)/dose
FIG := results/figures
PAPERMILL := $(BIN)/papermill --cwd . --log-level WARNING

.PHONY: help run train study test test-interop screenshot bench promote reference reference-models formation notebooks \
	precision precision-runs precision-runs-16k curriculum curriculum-runs natural-text natural-text-runs dose dose-runs \
	held-out held-out-runs clean-venv

help:  ## print every target with one line
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-zA-Z0-9_.-]+:[^=]*## / {printf "  make %-20s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

run: train study  ## train PRESET (with TRAIN_ARGS), then study it

train: $(VENV)/.installed  ## train PRESET into checkpoints/<run>/ (resumes it if it exists)
	$(BIN)/python train.py --preset $(PRESET) --resume $(TRAIN_ARGS)

# Figures and the attention page in Plots/<run>/; summary and executed notebook in checkpoints/<run>/.
study: $(VENV)/.installed  ## study the run trained last, or RUN=<name or checkpoint path>
	$(BIN)/python scripts/study_notebook.py $(RUN)

test: $(VENV)/.installed  ## the test suite (CPU, minutes)
	$(BIN)/python -m pytest -q

# TransformerLens export and the attention page in a real browser (tests marked interop). The extras are large
# (requirements-interop.txt); the default pins are their constraints, so torch stays the CPU build.
$(VENV)/.interop-installed: $(VENV)/.installed requirements-interop.txt
	$(BIN)/python -m pip install -q -c requirements.txt -r requirements-interop.txt
	touch $@

test-interop: $(VENV)/.interop-installed  ## TransformerLens export and the attention page in Chromium
	@test -x /usr/bin/chromium || { echo "error: the browser test needs Debian's Chromium: apt-get install chromium"; exit 1; }
	$(BIN)/python -m pytest -q -m interop

bench: $(VENV)/.installed  ## the speed table (about 10 min; bench/bench.py --quick: 90 s)
	$(BIN)/python bench/bench.py --profile

# ---- the committed reference results (results/), never written by the targets above ----
# They are read-only to every other command (checkpoint.output_path): only these targets may write there.
reference promote precision natural-text held-out dose formation: export MINIGPT_WRITE_REFERENCE = 1

# A finished run into checkpoints/reference/AS: weights (no optimizer state), config, vocabulary, metrics, sample.
promote: $(VENV)/.installed  ## copy a finished run (RUN=<its folder>) into checkpoints/reference/AS (OVERWRITE=1)
	@test -n "$(RUN)" -a -n "$(AS)" || { echo "usage: make promote RUN=<run folder> AS=<folder under $(REF)/>"; exit 2; }
	$(BIN)/python scripts/promote.py "$(RUN)" "$(AS)" $(if $(OVERWRITE),--overwrite)

# Studies, loss curves and tables of the committed reference checkpoints (minutes). The reference numbers are
# computed in fp32; a study of your run defaults to bf16 where that is fast (equal within the CIs, tested).
reference: $(VENV)/.installed  ## regenerate the reference studies, loss curves and tables in results/ (minutes)
	$(PAPERMILL) InductionHeads.ipynb results/InductionHeads_MiniGPT-2M.ipynb -p CHECKPOINT $(REF)/MiniGPT-2M/best.pt \
		-p NAME MiniGPT-2M -p PLOTS_DIR $(FIG) -p OUT_JSON results/induction_MiniGPT-2M.json -p PRECISION fp32
	$(PAPERMILL) InductionHeads.ipynb results/InductionHeads_MiniGPT-5.6M.ipynb -p CHECKPOINT $(REF)/MiniGPT-5.6M/best.pt \
		-p NAME MiniGPT-5.6M -p PLOTS_DIR $(FIG) -p OUT_JSON results/induction_MiniGPT-5.6M.json -p PRECISION fp32
	$(BIN)/python study.py $(REF)/MiniGPT-2M/best.pt --name MiniGPT-2M-random --primary random --plots-dir $(FIG) \
		--out-json results/induction_MiniGPT-2M-random.json --precision fp32
	for t in char bpe; do $(BIN)/python study.py $(EXP)/tokenizer-$$t-2M/best.pt --name MiniGPT-$$t-2M --primary random \
		--plots-dir $(FIG) --out-json results/induction_MiniGPT-$$t-2M.json --precision fp32; done
	for r in curriculum control; do $(BIN)/python study.py $(CUR)/2M-$$r/best.pt --name MiniGPT-2M-$$r --plots-dir $(FIG) \
		--out-json results/induction_MiniGPT-2M-$$r.json --precision fp32; done
	$(BIN)/python study.py $(CUR)/2M-curriculum/best.pt --name MiniGPT-2M-curriculum-S6 --S 6 --plots-dir $(FIG) \
		--out-json results/induction_MiniGPT-2M-curriculum-S6.json --precision fp32
	for m in 2M 5.6M; do $(BIN)/python scripts/loss_curve.py $(REF)/MiniGPT-$$m $(FIG)/Loss_Curve_MiniGPT-$$m.png; done
	$(BIN)/python scripts/results.py MiniGPT-2M=$(REF)/MiniGPT-2M:results/induction_MiniGPT-2M.json \
		MiniGPT-5.6M=$(REF)/MiniGPT-5.6M:results/induction_MiniGPT-5.6M.json

# The screenshot in Plots/: the 2M reference model's attention page in headless Chromium (under a minute).
screenshot: $(VENV)/.interop-installed  ## the attention page's screenshot in Plots/ (headless Chromium)
	$(BIN)/python scripts/attention_page.py $(REF)/MiniGPT-2M/best.pt --name MiniGPT-2M --plots-dir runs/page
	$(BIN)/python scripts/browser_check.py runs/page/Attention_Page_MiniGPT-2M.html --screenshot Plots/AttentionPage_Screenshot.png

# The reference models themselves: hours of CPU, one thread each as they were trained (a run is bit for bit
# reproducible at one thread count). Trains into runs/; then make promote RUN=runs/reference/MiniGPT-2M AS=MiniGPT-2M
# OVERWRITE=1, and the same for 5.6M.
reference-models: $(VENV)/.installed  ## retrain the 2M and 5.6M reference models into runs/reference/ (hours)
	OMP_NUM_THREADS=1 $(BIN)/python train.py --preset 2M --out-dir runs/reference/MiniGPT-2M --resume --no-progress
	OMP_NUM_THREADS=1 $(BIN)/python train.py --preset 5.6M --out-dir runs/reference/MiniGPT-5.6M --resume --no-progress

# fp32 against bf16 training (results/README.md, "Precision"): the runs take about 2 h of both cores (one thread
# per run, two runs at a time); then make promote RUN=runs/precision/<run> AS=precision/<run>, each. They ran before
# the 5.6M preset grew from 6,000 to 16,000 steps, so they keep its old budget.
precision-runs: $(VENV)/.installed  ## fp32 against bf16 training runs into runs/precision/ (about 2 h)
	for m in 2M 5.6M; do for s in 1337 1; do for p in fp32 bf16; do OMP_NUM_THREADS=1 $(BIN)/python train.py \
		--preset $$m --precision $$p --seed $$s --max-steps $$([ $$m = 5.6M ] && echo 6000 || echo 10000) \
		--out-dir runs/precision/$$m-$$p-seed$$s --resume --no-progress --plots-dir runs/precision & done; wait; done; done

# The 5.6M preset at its budget now (16,000 steps), where heads form: the fp32 run of seed 1337 is the reference
# model itself (same code; this run repeats its log bit for bit), so three runs: about 1.8 h of one core for fp32
# and 1 h for each bf16 run, one thread each; then make promote RUN=runs/precision16k/<run> AS=precision-16k/<run>.
precision-runs-16k: $(VENV)/.installed  ## the 5.6M precision runs at 16,000 steps into runs/precision16k/
	for r in "fp32 1" "bf16 1337" "bf16 1"; do set -- $$r; OMP_NUM_THREADS=1 $(BIN)/python train.py --preset 5.6M \
		--precision $$1 --seed $$2 --out-dir runs/precision16k/5.6M-$$1-seed$$2 --resume --no-progress \
		--plots-dir runs/precision16k/plots & done; wait

# The comparisons and their figures, from the committed metrics.json of those runs (seconds). The nulls (fp32 runs
# of seed 1337 that differ only in rounding): at 6,000 steps the 5.6M reference model as it was at that budget (its
# metrics.json at commit f964923), at 16,000 steps its 2-thread rerun (make run PRESET=5.6M).
precision: $(VENV)/.installed  ## the precision comparison and its figures, from the committed runs
	$(BIN)/python scripts/precision.py $(REF)/precision --null-2M $(REF)/MiniGPT-2M \
		--null-5.6M $(REF)/precision/null-5.6M-6000-steps --plot $(FIG)/Precision_Quality.png
	$(BIN)/python scripts/precision.py $(REF)/precision-16k --also 5.6M-fp32-seed1337=$(REF)/MiniGPT-5.6M \
		--null-5.6M $(REF)/make-run/MiniGPT-5.6M --plot $(FIG)/Precision_Quality_5.6M_16000_steps.png \
		--title "5.6M at 16,000 steps: fp32 (solid) against bf16 autocast (dashed), same seeds and batches"

# A repeat curriculum against no repeats (results/README.md, "A curriculum"): two 2M runs, about 30 minutes of both
# cores (one thread each); then make promote RUN=runs/issue13/<run> AS=curriculum/<run>, each.
curriculum-runs: $(VENV)/.installed  ## the repeat curriculum and its control into runs/issue13/ (30 min)
	OMP_NUM_THREADS=1 $(BIN)/python train.py --preset 2M --repeat-frac 1.0 --repeat-end 0.6 \
		--out-dir runs/issue13/2M-curriculum --resume --no-progress --plots-dir runs/issue13/plots & \
	OMP_NUM_THREADS=1 $(BIN)/python train.py --preset 2M --repeat-frac 0 \
		--out-dir runs/issue13/2M-control --resume --no-progress --plots-dir runs/issue13/plots & wait

# Its verdict against the criteria fixed in scripts/curriculum.py, from the committed runs and studies (a minute).
curriculum: $(VENV)/.installed  ## the curriculum's verdict and figures, from the committed runs
	$(BIN)/python scripts/curriculum.py curriculum=$(CUR)/2M-curriculum control=$(CUR)/2M-control \
		"constant 0.5 (the 2M preset)=$(REF)/MiniGPT-2M" \
		--studies results/induction_MiniGPT-2M-curriculum.json results/induction_MiniGPT-2M-curriculum-S6.json

# Natural text alone (results/README.md, "Without synthetic repeats"; issue #14): two configurations x two seeds,
# 25.6M tokens each, one thread per run, two runs at a time (hours of both cores; resumable: rerun to continue).
# Then make promote RUN=runs/issue14/<run> AS=natural-text/<run>, each.
natural-text-runs: $(VENV)/.installed  ## natural text without repeats into runs/issue14/ (hours)
	for s in 1337 1; do \
	OMP_NUM_THREADS=1 $(BIN)/python train.py --preset char-2M --repeat-frac 0 --block-size 256 --max-steps 12500 \
		--eval-interval 250 --probe-interval 250 --eval-batches 16 --seed $$s \
		--out-dir runs/issue14/char2M-ctx256-norep-seed$$s --resume --no-progress --plots-dir runs/issue14/plots & \
	OMP_NUM_THREADS=1 $(BIN)/python train.py --preset 2M --repeat-frac 0 --batch-size 32 --block-size 128 \
		--max-steps 6250 --eval-interval 125 --probe-interval 125 --seed $$s \
		--out-dir runs/issue14/word2M-32x128-norep-seed$$s --resume --no-progress --plots-dir runs/issue14/plots & \
	wait; done

# Their formation curves against the scaling law, from the committed metrics.json (seconds).
natural-text: $(VENV)/.installed  ## the natural-text formation figure, from the committed runs
	$(BIN)/python scripts/natural_text.py --out $(FIG)/Formation_Without_Repeats.png \
		$(foreach s,1337 1,"char, 8 x 256, seed $(s)=$(NAT)/char2M-ctx256-norep-seed$(s)" \
		"word, 32 x 128, seed $(s)=$(NAT)/word2M-32x128-norep-seed$(s)")

# More text, and dropout, each against the same control (results/README.md, "A held-out novel"; issue #14): the 2M
# word model without repeats, Persuasion held out whole as the validation text, the vocabulary capped at 10,000
# words so every run has the same parameters, 32,000 steps of 8 x 64 (16.4M tokens, 1.5x the law's 11.3M). One
# thread per run (hours of both cores; resumable: rerun to continue); then make promote RUN=... AS=held-out/<run>.
HELD_OUT_ARGS := --preset 2M --repeat-frac 0 --held-out persuasion --vocab-size 10000 --max-steps 32000 \
	--eval-batches 32 --seed 1337 --resume --no-progress --plots-dir runs/issue14/plots
held-out-runs: $(VENV)/.installed  ## the held-out-novel levers into runs/issue14/ (hours)
	OMP_NUM_THREADS=1 $(BIN)/python train.py $(HELD_OUT_ARGS) --out-dir runs/issue14/heldout-3novels & \
	OMP_NUM_THREADS=1 $(BIN)/python train.py $(HELD_OUT_ARGS) --out-dir runs/issue14/heldout-5novels \
		--novels prideprejudice sensesensibility emma mansfieldpark northangerabbey & wait
	OMP_NUM_THREADS=1 $(BIN)/python train.py $(HELD_OUT_ARGS) --dropout 0.1 --out-dir runs/issue14/heldout-3novels-dropout0.1

# Each lever against the control by the rule fixed in scripts/natural_text.py (--control), and the figure (seconds).
# The dropout run has not finished (resumable with held-out-runs); add it here when it has.
held-out: $(VENV)/.installed  ## the held-out levers against their control, from the committed runs
	$(BIN)/python scripts/natural_text.py --out $(FIG)/Formation_Held_Out_Novel.png --control "3 novels (control)" \
		--title "Natural text, Persuasion held out: three novels against five (2M, word, 10,000 words)" \
		"3 novels (control)=$(HELD)/heldout-3novels" "5 novels=$(HELD)/heldout-5novels"

# Repeat fraction 0.1, 0.25 and 0.5 against the no-repeat control of the curriculum runs (the 2M preset otherwise),
# three runs at once, one thread each (about 40 min of both cores); then make promote RUN=... AS=dose/<run>, each.
dose-runs: $(VENV)/.installed  ## repeat fractions 0.1, 0.25 and 0.5 into runs/issue14/ (40 min)
	for f in 0.1 0.25 0.5; do OMP_NUM_THREADS=1 $(BIN)/python train.py --preset 2M --repeat-frac $$f \
		--out-dir runs/issue14/2M-repeat$$f-seed1337 --resume --no-progress --plots-dir runs/issue14/plots & done; wait

dose: $(VENV)/.installed  ## the dose-response figure, from the committed runs
	$(BIN)/python scripts/dose_response.py --out $(FIG)/Repeat_Dose_Response.png 0=$(CUR)/2M-control \
		$(foreach f,0.1 0.25 0.5,$(f)=$(DOSE)/2M-repeat$(f)-seed1337)

# The executed copy of MiniGPT.ipynb for readers who only browse: the 2M preset, trained into runs/ (~16 min).
notebooks: $(VENV)/.installed  ## the executed copy of MiniGPT.ipynb in results/ (the 2M preset, ~16 min)
	$(PAPERMILL) MiniGPT.ipynb results/MiniGPT_MiniGPT-2M.ipynb -p OUT_DIR runs/notebook/MiniGPT-2M \
		-p PLOTS_DIR runs/notebook/plots -p RESUME False

# The formation figures and lines of results/README.md, from the runs' committed metrics.json.
formation: $(VENV)/.installed  ## the formation figures of results/README.md, from the committed runs
	$(BIN)/python scripts/formation.py --out $(FIG)/Induction_Formation.png \
		"recipe (10k words)=$(REF)/MiniGPT-2M" "vocabulary 2,048=$(EXP)/2M-vocab2048-repeats" \
		"vocabulary 2,048, no repeats=$(EXP)/2M-vocab2048-no-repeats" "16 x 128, lr 1e-3=$(EXP)/2M-ctx128-lr1e-3-repeats" \
		"batch 16 x 64=$(EXP)/2M-batch16-repeats"
	$(BIN)/python scripts/formation.py --x chars --out $(FIG)/Induction_Formation_Tokenizers.png \
		--title "Induction-head formation by tokenizer (2M parameters, same recipe)" \
		"word (10,050)=$(REF)/MiniGPT-2M" "char (80)=$(EXP)/tokenizer-char-2M" "BPE (10,050)=$(EXP)/tokenizer-bpe-2M" \
		"char (80), rerun=$(EXP)/char-2M-rerun"
	$(BIN)/python scripts/formation.py --out $(FIG)/Induction_Formation_Sizes_Seeds.png \
		--title "Induction-head formation across seeds and sizes (the recipe)" \
		"2M, seed 1337 (reference)=$(REF)/MiniGPT-2M" "2M, seed 1=$(REF)/seeds/MiniGPT-2M-seed1" \
		"2M, seed 2=$(REF)/seeds/MiniGPT-2M-seed2" "5.6M, seed 1337 (reference)=$(REF)/MiniGPT-5.6M" \
		"5.6M, seed 1337, 2 threads (make run)=$(REF)/make-run/MiniGPT-5.6M"
	$(BIN)/python scripts/formation.py --out $(FIG)/Induction_Formation_Curriculum.png \
		--title "Induction-head formation: a repeat curriculum against no repeats (2M)" \
		"curriculum: repeats 1.0 falling to 0 at step 6,000=$(CUR)/2M-curriculum" "no repeats=$(CUR)/2M-control" \
		"constant repeats 0.5 (the 2M preset)=$(REF)/MiniGPT-2M"

clean-venv:  ## remove .venv
	rm -rf $(VENV)
