# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv with pip when it is missing.
PYTHON ?= python3
VENV ?= .venv
# torch/torchvision pinned to the releases this project is tested with; override
# (e.g. TORCH_SPEC="torch torchvision") on other machines.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
export HF_HUB_OFFLINE ?= 1

.PHONY: demo test venv bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q $(TORCH_SPEC)
	$(VENV)/bin/python -m pip install -q -e '.[dev,export,tb]'
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/hcdg demo --out demo-out

test: venv
	$(VENV)/bin/python -m pytest -n 2 -q

bench: venv
	$(VENV)/bin/python -m benchmarks.run_all

clean:
	rm -rf demo-out .pytest_cache
