# zrs developer entry points. `make test` is what CI runs (.ci/run).
#
#   make build     bin/zrs, bin/zrs-recipe
#   make test      setup + lint + Go tests (race) + fuzz smoke + Python peer tests
#   make test-go   go test -race ./...
#   make fuzz      every Fuzz target for FUZZTIME each (found with go test -list)
#   make test-py   pytest tests/ against the real Python ZODB (in .venv)
#   make lint      gofmt, go vet, staticcheck
#   make bench     Go benchmarks, then the Go-vs-Python side by side (bench/fs.sh, bench/repl.sh)
#   make demo      write a database through the Go API, verify it, dump its tail
#   make package   not yet

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build
.DELETE_ON_ERROR:

GO ?= go
PYTHON := .venv/bin/python
FUZZTIME ?= 10s
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
GOBIN_DIR := $(or $(shell $(GO) env GOBIN),$(shell $(GO) env GOPATH)/bin)
STATICCHECK := $(GOBIN_DIR)/staticcheck

.PHONY: build setup test test-go fuzz test-py lint bench demo package

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

setup:
	tests/setup.sh

test: setup lint test-go fuzz test-py
	@echo "make test: OK (lint, test-go, fuzz, test-py all passed)"

test-go:
	$(GO) test -race -count=1 ./...

# Each target gets FUZZTIME of fresh inputs on top of its seed corpus. Targets
# are discovered per package, so a new Fuzz function is picked up untouched.
fuzz:
	@n=0; \
	for pkg in $$($(GO) list ./...); do \
	  list=$$($(GO) test -list '^Fuzz' "$$pkg"); \
	  for f in $$(grep '^Fuzz' <<<"$$list" || true); do \
	    echo "fuzz: $$pkg $$f for $(FUZZTIME)"; \
	    $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) "$$pkg"; \
	    n=$$((n + 1)); \
	  done; \
	done; \
	echo "fuzz: $$n targets passed"

test-py: setup
	$(PYTHON) -m pytest -p no:cacheprovider -v -rfEs tests/

lint: setup
	@files=$$(find . -name '*.go' -not -path './.git/*' -not -path './.venv/*' -print0 | xargs -0 gofmt -l); \
	if [[ -n $$files ]]; then echo "gofmt needed:"; echo "$$files"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	@echo "lint: OK"

bench: setup
	$(GO) test -run '^$$' -bench . -benchmem ./...
	bench/fs.sh
	bench/repl.sh

demo: build
	@dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; \
	$(GO) build -o "$$dir/fstool" ./tests/fstool; \
	echo "== fstool write $$dir/demo/Data.fs"; mkdir "$$dir/demo"; \
	"$$dir/fstool" write "$$dir/demo/Data.fs" --txns 50; \
	echo "== zrs fs verify"; bin/zrs fs verify "$$dir/demo/Data.fs"; \
	echo "== zrs fs dump | tail"; bin/zrs fs dump "$$dir/demo/Data.fs" | tail -n 15

package:
	@echo "make package: not yet (packaging comes with the appliance work)" >&2; exit 1
