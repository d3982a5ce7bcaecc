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

.PHONY: book test execute lab benchmark world student grade clean

# PyTorch's CPU build (about 200 MB) on a Linux laptop, where pip's default is the CUDA build (several GB):
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
# Empty by default, so the set-up also works on a machine that cannot reach PyTorch's own download site.
TORCH_INDEX ?=
TORCH := $(shell grep -E '^torch==' requirements.txt | cut -d' ' -f1)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/pip install --quiet $(TORCH) --index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(STAMP)

book: $(STAMP)  ## build the HTML book from the notebooks' stored outputs, failing on any warning
	$(BIN)/jupyter-book build . -W -n --keep-going

test: $(STAMP)  ## lint, unit tests, every chapter re-executed and compared with its stored outputs, the site in a browser
	$(BIN)/ruff check newsfeed tests benchmarks chapters _ext
	$(BIN)/pytest

execute: $(STAMP)  ## re-execute every chapter in place, to refresh stored outputs after a change
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=600 --ExecutePreprocessor.record_timing=True chapters/*.ipynb

lab: $(STAMP)  ## open the chapters in JupyterLab (token authentication stays on)
	$(BIN)/jupyter lab chapters/

benchmark: $(STAMP)  ## print every benchmark's table
	for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

student: $(STAMP)  ## the student edition: notebooks without solutions and their site, in _build/student
	$(BIN)/python -m newsfeed.teaching student --out _build/student
	$(BIN)/jupyter-book build _build/student -W -n --keep-going

grade: $(STAMP)  ## autograde submissions: make grade SUBMISSIONS="alice/03_data_preparation.ipynb bob/03_data_preparation.ipynb"
	$(BIN)/python -m newsfeed.teaching grade $(SUBMISSIONS)

world: $(STAMP)  ## write the default world's tables to data/default-seed0/
	$(BIN)/python -m newsfeed.world --out data

clean:
	rm -rf _build .pytest_cache
