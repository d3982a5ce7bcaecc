# The two commands: `make book` builds the site, `make test` runs every test. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Same numbers on every machine: fixed hash seed (set ordering) and single-threaded math libraries.
export PYTHONHASHSEED := 0
export OMP_NUM_THREADS := 1
export OPENBLAS_NUM_THREADS := 1
export MKL_NUM_THREADS := 1

.PHONY: book test test-other-cpu execute lab benchmark world student grade lock clean

# PyTorch's CPU build (about 200 MB) on a Linux laptop, where pip's default is the CUDA build (several GB):
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
# Empty by default, so the set-up also works on a machine that cannot reach PyTorch's own download site.
TORCH_INDEX ?=
TORCH := $(shell grep -E '^torch==' requirements.txt | cut -d' ' -f1)

# The environment is requirements.lock: every package at the exact version the book was last tested with.
$(STAMP): requirements.lock requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/pip install --quiet $(TORCH) --index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet -r requirements.lock
	touch $(STAMP)

# requirements.lock: every package of the environment at its exact version (one lock for Linux, macOS and Windows,
# Python 3.11 and later), compiled from requirements.txt by uv. The CUDA packages that PyPI's Linux torch wheel pins
# itself (several GB; the CPU build needs none) stay out of it: a CUDA torch still brings them, at its own pins.
# uv keeps the versions already locked where it can: `make lock LOCK_FLAGS=--upgrade` moves every package it may.
UV := uv==0.13.8
LOCK_FLAGS ?=
CUDA_PACKAGES := cuda-bindings cuda-pathfinder cuda-toolkit nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc \
	nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse \
	nvidia-cusparselt-cu13 nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx triton

lock:  ## re-pin every package into requirements.lock from requirements.txt (uv; after any change to requirements.txt)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(UV)
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --custom-compile-command "make lock" \
		$(addprefix --no-emit-package=,$(CUDA_PACKAGES)) $(LOCK_FLAGS) requirements.txt -o requirements.lock
	@! grep -E '^(nvidia-|cuda-|triton)' requirements.lock || { echo "requirements.lock pins the CUDA packages above: add them to CUDA_PACKAGES"; exit 1; }

book: $(STAMP)  ## build the HTML book from the notebooks' stored outputs, failing on any warning
	$(BIN)/jupyter-book build . -W -n --keep-going

test: $(STAMP)  ## lint, unit tests, every chapter re-executed and compared with its stored outputs, the site in a browser
	$(BIN)/ruff check newsfeed tests benchmarks chapters _ext
	$(BIN)/pytest

# Another processor's arithmetic, simulated on this one: PyTorch's kernels without AVX2, MKL on its compatible path
# and oneDNN on SSE4.1, numpy on its x86-64-v2 kernels, and OpenBLAS (numpy's and faiss's matrix products) on its
# oldest x86-64 kernels, whose sums round differently from a Zen's or a Xeon's (x86-64 only; elsewhere the variables
# change nothing, and OpenBLAS's is left out: it would warn of a core it does not know).
OTHER_CPU := ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE ONEDNN_MAX_CPU_ISA=SSE41 NPY_DISABLE_CPU_FEATURES=X86_V3 \
	$(if $(filter x86_64,$(shell uname -m)),OPENBLAS_CORETYPE=Prescott)

# Another processor also builds its own feature table: the dataset cache's sums differ in their last bits from one
# processor's vector instructions to another's, and chapters 3 and 8 check a table they compute against it, bit for
# bit. So the run starts without this processor's cache and leaves none behind for the next run on this one.
DATASET_CACHE := $(or $(NEWSFEED_DATA),data)/.cache/dataset-*.pkl

test-other-cpu: $(STAMP)  ## the whole suite as on another processor: notebooks compared within their tolerance
	rm -f $(DATASET_CACHE)
	env $(OTHER_CPU) NOTEBOOK_NUMBERS=tolerant $(BIN)/pytest; status=$$?; rm -f $(DATASET_CACHE); exit $$status

execute: $(STAMP)  ## re-execute every chapter in place, to refresh stored outputs after a change
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=600 --ExecutePreprocessor.record_timing=True chapters/*.ipynb
	$(BIN)/python -m newsfeed.numerics stamp chapters/*.ipynb

lab: $(STAMP)  ## open the chapters in JupyterLab (token authentication stays on)
	$(BIN)/jupyter lab chapters/

benchmark: $(STAMP)  ## print every benchmark's table
	for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

student: $(STAMP)  ## the student edition: notebooks without solutions and their site, in _build/student
	$(BIN)/python -m newsfeed.teaching --out _build/student
	$(BIN)/jupyter-book build _build/student -W -n --keep-going

# Seconds per cell and per submission, for example GRADE_FLAGS="--cell-timeout 120 --timeout 600".
GRADE_FLAGS ?=

grade: $(STAMP)  ## autograde submissions: make grade SUBMISSIONS="alice/03_data_preparation.ipynb bob/03_data_preparation.ipynb"
	$(BIN)/python -m newsfeed.grading $(GRADE_FLAGS) $(SUBMISSIONS)

world: $(STAMP)  ## write the default world's tables to data/default-seed0/
	$(BIN)/python -m newsfeed.world --out data

clean:
	rm -rf _build .pytest_cache
