# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv with pip when it is missing.
PYTHON ?= python3
VENV ?= .venv
# torch/torchvision pinned to the releases this project is tested with; override
# (e.g. TORCH_SPEC="torch torchvision") on other machines.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
export HF_HUB_OFFLINE ?= 1

.PHONY: demo test test-fast venv bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q $(TORCH_SPEC)
	$(VENV)/bin/python -m pip install -q -e '.[dev,export,tb]'
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/hcdg demo --out demo-out

# The full suite (what CI runs).
test: venv
	$(VENV)/bin/python -m pytest -n 2 -q

# Everything not marked slow (`@pytest.mark.slow`: multi-process, kill-and-resume, demo,
# learning checks, whole-store embeds): the edit-test loop, under 3 minutes on 2 idle cores.
test-fast: venv
	$(VENV)/bin/python -m pytest -n 2 -q -m "not slow"

bench: venv
	$(VENV)/bin/python -m benchmarks.run_all

clean:
	rm -rf demo-out .pytest_cache
