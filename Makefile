# Herald. The two commands that matter (see README.md):
#
#   make run    start PostgreSQL and Redis if needed, build, migrate, and serve on HERALD_ADDR
#   make test   every test against real PostgreSQL and Redis on loopback
#
# `make help` lists the rest.

SHELL         := bash
.SHELLFLAGS   := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Go lives in /usr/local/go on a fresh machine, which is not always on PATH.
ifeq ($(shell command -v go 2>/dev/null),)
  ifneq ($(wildcard /usr/local/go/bin/go),)
    export PATH := /usr/local/go/bin:$(PATH)
  endif
endif

GO         ?= go
BIN        := bin/herald
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
ENSURE     := docker/ensure-services.sh
COMPOSE    := docker compose -f docker/compose.yaml
PROJECTION ?= all

# Every Go file git knows of or would add (tracked, plus untracked ones that are not ignored).
GO_FILES := git ls-files -z --cached --others --exclude-standard -- '*.go'

.PHONY: help build run migrate rebuild services test-services test test-short test-faults load fuzz bench lint fmt up down clean demo-recording

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-13s %s\n", $$1, $$2}'

build: ## build bin/herald and bin/twilio-sim
	$(GO) build -ldflags '-X main.version=$(VERSION)' -o $(BIN) ./cmd/herald
	$(GO) build -o bin/twilio-sim ./cmd/twilio-sim

run: services build ## start PostgreSQL/Redis if needed, build, migrate, serve (with the Twilio simulator when no credentials are set)
	docker/run-dev.sh

migrate: services build ## create the database if missing and apply migrations
	$(BIN) migrate

rebuild: services build ## replay the event log into fresh read models (PROJECTION=name, default all)
	$(BIN) rebuild $(PROJECTION)

services: ## make sure PostgreSQL and Redis at DATABASE_URL / REDIS_URL answer
	@$(ENSURE)

test-services: ## make sure PostgreSQL and Redis at TEST_DATABASE_URL / TEST_REDIS_URL answer
	@$(ENSURE) --test

test: test-services ## run every test, then the event store, relay and projections under -race
	$(GO) test -count=1 -p 2 -timeout 20m ./...
	$(GO) test -race -count=1 -timeout 20m ./events/... ./projections/...

test-faults: test-services ## the fault tests: real processes under 429s, 500s, stalls, SIGKILL, Redis and PostgreSQL restarts, a Twilio partition, a long transaction (~6 min)
	HERALD_FAULT_TESTS=1 $(GO) test -count=1 -run '^TestFault' -parallel 8 -v -timeout 20m ./cmd/herald

load: test-services ## the load test: webhooks + a running campaign + API reads for HERALD_LOAD_DURATION (5m), with a summary table
	HERALD_LOAD_TEST=1 $(GO) test -count=1 -run '^TestLoad$$' -v -timeout 30m ./cmd/herald

test-short: test-services ## run the tests in -short mode
	$(GO) test -short -count=1 -p 2 -timeout 10m ./...

fuzz: test-services ## run every fuzz target (.ci/fuzz lists them) for FUZZTIME (default 60s), two at a time
	FUZZTIME=$(or $(FUZZTIME),60s) .ci/fuzz

bench: test-services ## run every benchmark (full size, ~30 min; .ci/bench): bench.out, then docs/benchmarks.md
	.ci/bench

DEMO_FRAMES := $(or $(TMPDIR),/tmp)/herald-demo-frames

demo-recording: test-services ## walk through the UI in headless Chromium: docs/demo.webm and docs/screenshots/*.png (needs chromium, ffmpeg)
	rm -rf docs/screenshots "$(DEMO_FRAMES)" && mkdir -p docs/screenshots
	HERALD_DEMO_SHOTS="$(CURDIR)/docs/screenshots" HERALD_DEMO_FRAMES="$(DEMO_FRAMES)" HERALD_DEMO_PAUSE=1500ms \
	  $(GO) test ./web/ui -run '^TestBrowserWalkthrough$$' -count=1 -v
	cd "$(DEMO_FRAMES)" && ffmpeg -y -loglevel error -f concat -safe 0 -i frames.txt \
	  -vf "fps=10,scale=1280:-2,format=yuv420p" -c:v libvpx-vp9 -b:v 0 -crf 45 -row-mt 1 -deadline good -cpu-used 5 \
	  "$(CURDIR)/docs/demo.webm"
	ls -lh docs/demo.webm docs/screenshots

lint: ## check gofmt and go vet
	@unformatted=$$($(GO_FILES) | xargs -0 -r gofmt -l); \
	if [[ -n $$unformatted ]]; then \
	  echo "gofmt would change these files (run: make fmt):"; echo "$$unformatted"; exit 1; \
	fi
	$(GO) vet ./...

fmt: ## gofmt every Go file
	$(GO_FILES) | xargs -0 -r gofmt -w

up: ## start PostgreSQL 16 and Redis 7 in Docker, on 127.0.0.1
	$(COMPOSE) up -d --wait postgres redis

down: ## stop and remove everything docker/compose.yaml started (data volumes are kept)
	$(COMPOSE) --profile app --profile sim down

clean: ## remove build and benchmark output
	rm -rf bin bench.out
