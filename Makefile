# The README's commands. Each bootstraps only what it needs (scripts/bootstrap STAGE...) and leaves nothing running.
SHELL := /bin/bash
PYTHON := .venv/bin/python
export TF_CLI_CONFIG_FILE := $(CURDIR)/.tools/terraformrc
export TF_IN_AUTOMATION := 1
# Terraform's Go runtime collects less often (a quarter less CPU per command), and makes no checkpoint call.
export GOGC ?= 400
export CHECKPOINT_DISABLE ?= 1

.PHONY: demo test check bench bootstrap clean

## demo: embedded LocalStack, tflocal apply with the demo secret, invoke, destroy (needs .venv alone)
demo:
	@scripts/bootstrap venv
	@$(PYTHON) scripts/demo.py

## test: every tier: unit, Terraform (fmt, validate, test, checkov), integration against LocalStack (what CI runs)
test:
	@scripts/bootstrap venv checkov pythons
	@$(PYTHON) -m pytest

## check: the quick loop: every test that needs no LocalStack (unit, Terraform, checkov, the build contract)
check:
	@scripts/bootstrap venv checkov pythons
	@$(PYTHON) -m pytest -m "not localstack" -n 2 --dist loadfile --no-loadscope-reorder

## bench: floor, ours, the seed and Secrets Manager + Powertools on one embedded LocalStack (bench/results.md, .png)
bench:
	@scripts/bootstrap venv bench
	@$(PYTHON) bench/bench.py
	@$(PYTHON) localstack-process-executor/benchmarks/measure.py

## bootstrap: every environment make check and make test need (make bench adds its extras itself)
bootstrap:
	@scripts/bootstrap venv checkov pythons

clean:
	rm -rf .venv .tools dist .terraform .pytest_cache
