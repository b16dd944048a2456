# zrs developer entry points. `make test` is what CI runs (.ci/run).
#
#   make build     bin/zrs, bin/zrs-recipe
#   make test      setup + lint + Go tests (race) + fuzz smoke + Python peer tests
#   make test-go   go test -race ./...
#   make fuzz      every Fuzz target for FUZZTIME each (found with go test -list)
#   make test-py   pytest tests/ against the real Python ZODB (in .venv)
#   make lint      gofmt, go vet, staticcheck
#   make bench     Go benchmarks, then the Go-vs-Python side by side (bench/fs.sh, bench/repl.sh, bench/zeo.sh)
#   make demo      a local primary + secondary replicating: status, verify, dumps compared
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
	bench/zeo.sh

# A local primary and secondary replicating over unix sockets in a temp
# dir: the primary (fstool serve-primary: core/primary plus a writer, as
# zrs has no ZEO server yet) commits DEMO_TXNS transactions while a real
# `zrs secondary` receives them; then both statuses, both files verified,
# and their dumps compared.
DEMO_TXNS ?= 60
demo: build
	@dir=$$(mktemp -d); pids=; \
	trap 'for p in $$pids; do kill $$p 2>/dev/null || true; done; wait; rm -rf "$$dir"' EXIT; \
	$(GO) build -o "$$dir/fstool" ./tests/fstool; \
	mkdir "$$dir/primary" "$$dir/secondary"; \
	echo "== primary: $$dir/primary/Data.fs, replicating on $$dir/repl.sock, committing $(DEMO_TXNS) transactions"; \
	"$$dir/fstool" serve-primary "$$dir/primary/Data.fs" --replicate-to "$$dir/repl.sock" \
	  --admin "$$dir/primary.admin" --txns $(DEMO_TXNS) --commit-every 25ms >"$$dir/primary.out" 2>"$$dir/primary.log" & pids="$$pids $$!"; \
	sleep 0.3; \
	echo "== secondary: bin/zrs secondary $$dir/secondary/Data.fs --replicate-from $$dir/repl.sock"; \
	bin/zrs secondary "$$dir/secondary/Data.fs" --replicate-from "$$dir/repl.sock" \
	  --admin "$$dir/secondary.admin" 2>"$$dir/secondary.log" & pids="$$pids $$!"; \
	sleep 0.5; \
	echo "== zrs status (secondary, while the primary is still committing)"; \
	bin/zrs status "$$dir/secondary.admin"; \
	lasttid() { bin/zrs status "$$1" --json | sed -n 's/^  "last_tid": "\([0-9a-f]*\)".*/\1/p'; }; \
	for i in $$(seq 200); do \
	  [[ -s "$$dir/primary.out" ]] && [[ "$$(lasttid "$$dir/primary.admin")" == "$$(lasttid "$$dir/secondary.admin")" ]] && break; \
	  sleep 0.1; \
	done; \
	echo "== zrs status (primary)"; bin/zrs status "$$dir/primary.admin"; \
	echo "== zrs status (secondary)"; bin/zrs status "$$dir/secondary.admin"; \
	for p in $$pids; do kill $$p; done; wait $$pids; pids=; \
	echo "== zrs fs verify (primary, secondary)"; \
	bin/zrs fs verify "$$dir/primary/Data.fs"; bin/zrs fs verify "$$dir/secondary/Data.fs"; \
	bin/zrs fs dump "$$dir/primary/Data.fs" >"$$dir/primary.dump"; bin/zrs fs dump "$$dir/secondary/Data.fs" >"$$dir/secondary.dump"; \
	echo "== zrs fs dump: primary and secondary are identical ($$(grep -c '^Trans' "$$dir/primary.dump") transactions); the tail:"; \
	diff -u "$$dir/primary.dump" "$$dir/secondary.dump"; cmp -s "$$dir/primary/Data.fs" "$$dir/secondary/Data.fs" && echo "   (and byte-identical files)"; \
	tail -n 6 "$$dir/secondary.dump"

package:
	@echo "make package: not yet (packaging comes with the appliance work)" >&2; exit 1
