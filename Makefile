# Set-up and the everyday jobs. `make quickstart` and `make test` create .venv on first use.
# TORCH picks the PyTorch build: the default pin is the CPU build on these machines; on a GPU
# machine install your CUDA build of torch into .venv first (any 2.4 <= version < 2.15 works).
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: install quickstart lint test test-all test-image-metrics format clean-runs

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	# the 3,955 real IU X-ray reports (NLMCXR_reports.tgz) ship in torchxrayvision's wheel; the iu_xray dataset reads
	# the archive in place and never imports the package, so its heavy dependencies are not needed
	$(BIN)/pip install -q --no-deps "torchxrayvision>=1.5"
	touch $@

quickstart: install
	$(BIN)/medim quickstart

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# the fast suite (tests marked slow are left out): under two minutes on 2 CPU cores
test: lint
	$(BIN)/python -m pytest -q -m "not slow"

# everything, as CI runs it
test-all: lint
	$(BIN)/python -m pytest -q

# The image metrics (FID via pytorch-fid, KID/IS via torch-fidelity) import torchvision, and no torchvision imports
# beside the CPU torch 2.13.0 pin, so they get a venv of their own with a matching pair (torch 2.14.1 and torchvision
# 0.29.1 lie on these machines' disk; elsewhere pip downloads a CUDA build, several GB). Their tests skip in .venv.
IMAGE_VENV ?= .venv-image-metrics
IMAGE_TORCH ?= torch==2.14.1 torchvision==0.29.1

$(IMAGE_VENV)/.installed: pyproject.toml
	test -x $(IMAGE_VENV)/bin/python || $(PYTHON) -m venv $(IMAGE_VENV)
	$(IMAGE_VENV)/bin/python -c "import torchvision" 2>/dev/null || $(IMAGE_VENV)/bin/pip install -q $(IMAGE_TORCH)
	$(IMAGE_VENV)/bin/pip install -q -e ".[dev,metrics,image-metrics]"
	touch $@

test-image-metrics: $(IMAGE_VENV)/.installed
	$(IMAGE_VENV)/bin/python -m pytest -q tests/evaluation/image_metrics tests/conformance/test_conformance_registered.py \
		-k "image_metrics or feature_extractors"

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean-runs:
	rm -rf runs

# the demo app over the quickstart's run (`make quickstart` first): http://127.0.0.1:7860
.PHONY: demo
demo: install
	$(BIN)/medim demo

# docs/demo_*.png, the README's pictures of the demo: the quickstart's run served and driven in headless Chromium
.PHONY: demo-screenshot
demo-screenshot: install
	$(BIN)/python -m medim.demo.browser --out docs
	rm -f docs/example.png

# WordNet for NLTK's METEOR (the `paper` report metrics), copied where NLTK reads it from Debian's packages,
# installed first as root: apt-get install -y wordnet-base wordnet-sense-index (.ci/run does both). Also done on
# first use; the tests that need it skip, saying so, when the packages are absent.
.PHONY: metrics-data
metrics-data: install
	$(BIN)/python -m medim.evaluation.report_metrics.setup

# docs/eval_report.png, the README's picture of the HTML report: a tiny quickstart run (about two minutes on 2 CPU
# cores), its evaluation and a headless-Chromium screenshot of eval/report.html (as root: apt-get install -y chromium)
.PHONY: report-screenshot
report-screenshot: install
	rm -rf runs/report-screenshot
	$(BIN)/medim train quickstart data.num_train=200 data.num_val=40 data.num_test=40 train.steps=60 \
		train.eval_every=20 train.log_every=5 '~train.max_minutes' output_dir=runs/report-screenshot
	$(BIN)/medim eval runs/report-screenshot/quickstart --samples 16
	$(BIN)/python -m medim.evaluation.screenshot runs/report-screenshot/quickstart/eval/report.html \
		docs/eval_report.png --width 1240 --height 1500
