# Tally: the everyday commands. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
NPM ?= npm

.PHONY: help install dev test test-unit chaos loadtest bench observe observability k8s-synth k8s-check k8s-dev lint format generate services-up services-down services-purge migrate

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

# `npm install` rather than `npm ci`: the lock file lists only the platform builds of native
# tools (biome, buf) that the registry served, and `npm ci` refuses such a lock file.
node_modules/.package-lock.json: package.json package-lock.json
	$(NPM) install --no-audit --no-fund
	@touch $@

install: node_modules/.package-lock.json ## Install dependencies (Node 24 comes with them)

services-up: ## Start Kafka, Redis and PostgreSQL on loopback (installs what is missing)
	scripts/services-up.sh

services-down: ## Stop the local servers (data kept)
	scripts/services-down.sh

services-purge: ## Stop the local servers and delete their data
	scripts/services-down.sh --purge

dev: install services-up ## Run every role in one process against the local servers (on loopback, access control off)
	source scripts/services-env.sh && TALLY_BIND_HOST=$${TALLY_BIND_HOST:-127.0.0.1} TALLY_AUTH=$${TALLY_AUTH:-off} bin/tally all

migrate: install services-up ## Apply the PostgreSQL schema
	source scripts/services-env.sh && bin/tally migrate

test: install ## Lint, then every test (unit, and integration on the real servers, Redis Cluster included)
	scripts/install-helm.sh >/dev/null
	scripts/install-k6.sh >/dev/null
	scripts/install-grpcurl.sh >/dev/null
	scripts/services-up.sh --redis-cluster
	$(NPM) run lint
	source scripts/services-env.sh && $(NPM) test

test-unit: install ## Unit tests only (no servers needed)
	$(NPM) run test:unit

chaos: install ## Kill, rebalance and restart everything under load, then check every sink (CHAOS_EVENTS=100000)
	scripts/install-deps.sh
	$(NPM) run chaos

loadtest: install ## Load tests (k6) against a running Tally; SCENARIOS="rest-single grpc-unary" picks some
	scripts/install-k6.sh
	scripts/loadtest.sh $(SCENARIOS)

observe: install ## Prometheus with Tally's rules against a running Tally (TARGETS="gateway=127.0.0.1:8080 ingest=127.0.0.1:9464")
	scripts/observe.sh $(TARGETS)

observability: install ## Re-render the dashboards and rule files from observability/*.ts
	node_modules/.bin/node observability/render.ts

bench: install ## Benchmark against baselines measured in the same run (~25 min on 2 cores); writes bench/RESULTS.md
	scripts/install-k6.sh
	scripts/services-up.sh
	node_modules/.bin/node bench/bench.ts

k8s-synth: install ## Regenerate the platform's manifests (cdk8s/dist) from cdk8s/
	node_modules/.bin/node cdk8s/main.ts

k8s-check: install ## Lint and render the chart, synth the platform, validate everything offline (builds helm once)
	scripts/install-helm.sh >/dev/null
	node_modules/.bin/node --test scripts/k8s.test.ts scripts/k8s-image.test.ts scripts/k8s-deploy.test.ts scripts/k8s-docs.test.ts

# The namespace is created here, outside the platform's manifests, and kept: skaffold's cleanup on
# Ctrl-C deletes what it applied, and the namespace holds Strimzi's RoleBindings (docs/deploy.md).
k8s-dev: install ## skaffold dev on kind or minikube: platform, image, Helm release, gateway on http://localhost:8080/
	@command -v skaffold >/dev/null || { echo "skaffold not found: see docs/deploy.md"; exit 1; }
	scripts/install-helm.sh >/dev/null
	node_modules/.bin/node cdk8s/main.ts --size dev
	kubectl create namespace tally --dry-run=client -o yaml | kubectl apply -f -
	PATH="$$(dirname "$$(scripts/install-helm.sh --print-path)"):$$PATH" skaffold dev --port-forward

lint: install ## Formatting, lint, import boundaries, proto lint and type check
	$(NPM) run lint

format: install ## Rewrite files to the project's formatting
	$(NPM) run format

generate: install ## Regenerate services/gen from proto/ (protobuf code and the OpenAPI document, openapi.json)
	$(NPM) run generate
