# The README's commands. Each bootstraps what it needs (scripts/bootstrap) and leaves nothing running.
SHELL := /bin/bash
PYTHON := .venv/bin/python
export TF_CLI_CONFIG_FILE := $(CURDIR)/.tools/terraformrc
export TF_IN_AUTOMATION := 1

.PHONY: demo test bench bootstrap clean

## demo: embedded LocalStack, tflocal apply with the demo secret, invoke, destroy
demo: bootstrap
	@$(PYTHON) scripts/demo.py

## test: every tier: unit, Terraform (fmt, validate, test), integration against LocalStack
test: bootstrap
	@$(PYTHON) -m pytest

## bench: floor, ours, the seed and Secrets Manager + Powertools on one embedded LocalStack (bench/results.md, .png)
bench: bootstrap
	@$(PYTHON) -m pip install --disable-pip-version-check --quiet --requirement requirements-bench.txt
	@$(PYTHON) bench/bench.py
	@$(PYTHON) localstack-process-executor/benchmarks/measure.py

bootstrap:
	@scripts/bootstrap

clean:
	rm -rf .venv .tools dist .terraform .pytest_cache
