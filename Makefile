# zrs developer entry points. `make test` is what CI runs (.ci/run).
#
#   make build     bin/zrs, bin/zrs-recipe
#   make test      setup + lint + Go tests (race) + fuzz smoke + Python peer tests
#   make test-go   go test -race ./...
#   make fuzz      every Fuzz target for FUZZTIME each (found with go test -list)
#   make test-py   pytest tests/ against the real Python ZODB (in .venv)
#   make lint      gofmt, go vet, staticcheck
#   make bench     Go benchmarks, then the Go-vs-Python side by side (bench/fs.sh, bench/repl.sh, bench/zeo.sh)
#   make demo      a local primary + secondary replicating, a Python app writing and reading through ZEO: status, verify, dumps compared
#   make package   dist/zrs_VERSION_amd64.deb and dist/zrs-VERSION.x86_64.rpm (nfpm, packaging/nfpm.yaml)

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
# On a loaded machine Go's fuzzing engine can report "context deadline
# exceeded" when a worker does not stop in time at the end of FUZZTIME; that
# is not a finding (no failing input is written), so such a run is repeated
# once. A real failure writes its input under testdata/fuzz and fails.
fuzz:
	@n=0; out=$$(mktemp); trap 'rm -f "$$out"' EXIT; \
	for pkg in $$($(GO) list ./...); do \
	  list=$$($(GO) test -list '^Fuzz' "$$pkg"); \
	  for f in $$(grep '^Fuzz' <<<"$$list" || true); do \
	    for try in 1 2; do \
	      echo "fuzz: $$pkg $$f for $(FUZZTIME)"; \
	      if $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) "$$pkg" 2>&1 | tee "$$out"; test $${PIPESTATUS[0]} -eq 0; then break; fi; \
	      if [[ $$try == 1 ]] && grep -q 'context deadline exceeded' "$$out" && ! grep -q 'Failing input written' "$$out"; then \
	        echo "fuzz: $$f: the engine timed out stopping a worker (no failing input); running it again"; continue; \
	      fi; \
	      exit 1; \
	    done; \
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

# A local primary and secondary replicating, as a site runs them: `zrs
# primary --zeo` and `zrs secondary --zeo` in a temp dir (replication over a
# unix socket, ZEO on loopback ports), an unmodified Python ZODB program
# (tests/demo_app.py, from the .venv set-up makes) committing DEMO_TXNS
# transactions through ZEO on the primary and reading them back read-only
# from the secondary; then both statuses, both files verified, their dumps
# compared.
DEMO_TXNS ?= 200
demo: build setup
	@dir=$$(mktemp -d); pids=; \
	trap 'for p in $$pids; do kill $$p 2>/dev/null || true; done; wait; rm -rf "$$dir"' EXIT; \
	zeoaddr() { for i in $$(seq 100); do a=$$(sed -n 's/.*msg="serving ZEO" addr=\([^ ]*\).*/\1/p' "$$1"); [[ -n $$a ]] && { echo "$$a"; return; }; sleep 0.1; done; echo "no ZEO address in $$1" >&2; cat "$$1" >&2; return 1; }; \
	mkdir "$$dir/primary" "$$dir/secondary"; \
	echo "== bin/zrs primary $$dir/primary/Data.fs --zeo 127.0.0.1:0 --replicate-to $$dir/repl.sock"; \
	bin/zrs primary "$$dir/primary/Data.fs" --zeo 127.0.0.1:0 --replicate-to "$$dir/repl.sock" \
	  --admin "$$dir/primary.admin" 2>"$$dir/primary.log" & pids="$$pids $$!"; \
	paddr=$$(zeoaddr "$$dir/primary.log"); echo "   serving ZEO on $$paddr"; \
	echo "== bin/zrs secondary $$dir/secondary/Data.fs --replicate-from $$dir/repl.sock --zeo 127.0.0.1:0"; \
	bin/zrs secondary "$$dir/secondary/Data.fs" --replicate-from "$$dir/repl.sock" --zeo 127.0.0.1:0 \
	  --admin "$$dir/secondary.admin" 2>"$$dir/secondary.log" & pids="$$pids $$!"; \
	saddr=$$(zeoaddr "$$dir/secondary.log"); echo "   serving ZEO read-only on $$saddr"; \
	echo "== a Python ZODB application writes through ZEO on the primary"; \
	.venv/bin/python tests/demo_app.py write "$$paddr" $(DEMO_TXNS); \
	echo "== and reads on the secondary"; \
	.venv/bin/python tests/demo_app.py read "$$saddr" $(DEMO_TXNS); \
	echo "== zrs status (primary)"; bin/zrs status "$$dir/primary.admin"; \
	echo "== zrs status (secondary)"; bin/zrs status "$$dir/secondary.admin"; \
	for p in $$pids; do kill $$p; done; wait $$pids; pids=; \
	echo "== zrs fs verify (primary, secondary)"; \
	bin/zrs fs verify "$$dir/primary/Data.fs"; bin/zrs fs verify "$$dir/secondary/Data.fs"; \
	bin/zrs fs dump "$$dir/primary/Data.fs" >"$$dir/primary.dump"; bin/zrs fs dump "$$dir/secondary/Data.fs" >"$$dir/secondary.dump"; \
	echo "== zrs fs dump: primary and secondary are identical ($$(grep -c '^Trans' "$$dir/primary.dump") transactions); the tail:"; \
	diff -u "$$dir/primary.dump" "$$dir/secondary.dump"; cmp -s "$$dir/primary/Data.fs" "$$dir/secondary/Data.fs" && echo "   (and byte-identical files)"; \
	tail -n 6 "$$dir/secondary.dump"

# The .deb and the .rpm, from the one nfpm config packaging/nfpm.yaml, into
# DIST (default dist/): zrs_PKGVERSION_ARCH.deb and zrs-PKGVERSION.RPMARCH.rpm,
# PKGVERSION being VERSION made valid for both (packaging/version.sh). The
# binaries are built afresh for them: static (CGO_ENABLED=0, so the rpm runs
# on any glibc), -trimpath, stamped with VERSION like `make build`'s. nfpm is
# pinned in its own module (packaging/tool/go.mod, `go tool`): its go.sum
# makes it build offline once fetched, and none of its dependencies enter the
# daemon's go.mod.
DIST ?= dist
NFPM := $(GO) tool -modfile=packaging/tool/go.mod nfpm
package:
	@pkgver=$$(packaging/version.sh '$(VERSION)'); \
	arch=$$($(GO) env GOARCH); \
	case $$arch in amd64) rpmarch=x86_64 ;; arm64) rpmarch=aarch64 ;; \
	  *) echo "make package: no RPM architecture name for GOARCH=$$arch" >&2; exit 1 ;; esac; \
	stage=$(DIST)/.stage; rm -rf "$$stage"; mkdir -p "$$stage/bin" "$$stage/help"; \
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o "$$stage/bin/" ./cmd/zrs ./cmd/zrs-recipe; \
	"$$stage/bin/zrs" --help >"$$stage/help/zrs.txt"; \
	"$$stage/bin/zrs-recipe" --help >"$$stage/help/zrs-recipe.txt"; \
	mkdir -p "$$stage/man"; \
	$(GO) run ./packaging/manpage -o "$$stage/man/zrs.1.gz" -version "$$pkgver" -see-also 'zrs-recipe(1)' \
	  -summary 'ZODB replication for FileStorage databases, with a ZEO-compatible storage server' \
	  -- "$$stage/bin/zrs" 'fs verify' 'fs dump' primary secondary status promote run version; \
	$(GO) run ./packaging/manpage -o "$$stage/man/zrs-recipe.1.gz" -version "$$pkgver" -see-also 'zrs(1)' \
	  -summary 'turn a zrs site file into the configs and systemd units of its storages' \
	  -- "$$stage/bin/zrs-recipe" import; \
	export ZRS_PKG_VERSION=$$pkgver ZRS_PKG_ARCH=$$arch ZRS_PKG_STAGE=$$stage; \
	$(NFPM) pkg --config packaging/nfpm.yaml --packager deb --target "$(DIST)/zrs_$${pkgver}_$${arch}.deb"; \
	$(NFPM) pkg --config packaging/nfpm.yaml --packager rpm --target "$(DIST)/zrs-$${pkgver}.$${rpmarch}.rpm"; \
	rm -rf "$$stage"
