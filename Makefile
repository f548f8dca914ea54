# Two commands for a newcomer: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help run test build test-unit bench fmt lint clean-data fuzz

help: ## List targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

run: ## Run the orchestrator on the embedded tier (Ctrl-C stops it)
	@scripts/run-local.sh $(ARGS)

test: ## Install what the tests need, then run every test
	@scripts/test.sh

build: ## Build the workspace
	@source scripts/env.sh && cargo build --workspace --all-targets

fuzz: ## Run every fuzz target for 10 minutes (cargo-fuzz, nightly)
	@scripts/fuzz.sh long

bench: ## Run the benchmarks
	@scripts/bench.sh

fmt: ## Format the code
	@cargo fmt --all

lint: ## Clippy with warnings as errors
	@source scripts/env.sh && cargo clippy --workspace --all-targets -- -D warnings

clean-data: ## Remove the local data dir
	rm -rf ./orchestrator-data
