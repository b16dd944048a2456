#!/usr/bin/env bash
# Prepare a machine (a fresh Debian, as root, is the baseline) to run `make test`:
#   - the system packages the suites need, installed only when missing;
#   - .venv/ at the repo root with the pinned Python peers (tests/requirements.txt:
#     ZODB, and ZEO's client and runzeo server),
#     rebuilt only when the requirements or the interpreter change;
#   - .venv-zrs/ likewise with the real zc.zrs 3.1.0 (tests/requirements-zrs.txt),
#     which needs an older ZODB than .venv has (see tests/README.md);
#   - staticcheck and nfpm at pinned versions.
# Idempotent: a second run installs nothing. Any failure stops the run loudly:
# the interoperability tests must never be skipped because a peer is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# honnef.co/go/tools v0.8.2 is the 2026.2.2 release.
STATICCHECK_VERSION=v0.8.2

log() { printf 'setup: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

install_system_packages() {
    local missing=()
    command -v python3 >/dev/null || missing+=(python3)
    # `python3 -m venv` needs ensurepip, which Debian ships separately.
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then missing+=(python3-venv); fi
    # `go test -race` needs cgo, hence a C toolchain.
    command -v gcc >/dev/null || missing+=(gcc libc6-dev)
    command -v git >/dev/null || missing+=(git)
    command -v make >/dev/null || missing+=(make)
    # The ZEO TLS tests make their CA and certificates with the openssl CLI.
    command -v openssl >/dev/null || missing+=(openssl)
    # The package tests (tests/test_package.py) read the .rpm that `make
    # package` builds with Debian's rpm (dpkg is on every Debian), install
    # the .deb into a scratch root under fakeroot, and its postinst runs
    # systemd-sysusers and systemd-tmpfiles there.
    command -v rpm >/dev/null || missing+=(rpm)
    command -v fakeroot >/dev/null || missing+=(fakeroot)
    command -v systemd-sysusers >/dev/null || missing+=(systemd)
    # ... and render its man pages with groff.
    command -v groff >/dev/null || missing+=(groff-base)
    # tests/test_zeo_fsync_failure.py makes the daemon's fsyncs fail by
    # injecting EIO with strace.
    command -v strace >/dev/null || missing+=(strace)
    ((${#missing[@]} == 0)) && return 0

    log "installing system packages: ${missing[*]}"
    [[ $(id -u) == 0 ]] || die "need root to install: ${missing[*]}"
    command -v apt-get >/dev/null || die "no apt-get; install by hand: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
}

check_go() {
    command -v go >/dev/null ||
        die "go not found on PATH; install the Go toolchain named in go.mod (https://go.dev/dl/)"
    go version >&2
}

# The stamp covers the requirements and the interpreter, so either change
# rebuilds the venv from scratch (no stale packages survive an upgrade).
requirements_stamp() {
    { cat "$1"; python3 -VV; } | sha256sum | cut -d' ' -f1
}

# setup_venv DIR REQUIREMENTS IMPORTS: build DIR from the pinned REQUIREMENTS
# unless its stamp matches, then import IMPORTS so that a broken install fails
# here and not mid-suite.
setup_venv() {
    local venv=$1 requirements=$2 imports=$3
    local stamp=$venv/.requirements.sha256 want have=""
    want=$(requirements_stamp "$requirements")
    [[ -f $stamp ]] && have=$(<"$stamp")
    if [[ -x $venv/bin/python && $want == "$have" ]]; then
        log "venv up to date ($venv)"
        return 0
    fi
    log "creating $venv from $requirements"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q \
        -r "$requirements"
    "$venv/bin/python" -c "import $imports"
    # Written last: an interrupted install is retried on the next run.
    printf '%s\n' "$want" >"$stamp"
}

setup_staticcheck() {
    local bindir sc
    bindir=$(go env GOBIN)
    [[ -n $bindir ]] || bindir=$(go env GOPATH)/bin
    sc=$bindir/staticcheck
    if [[ -x $sc ]] && "$sc" -version | grep -qF "(${STATICCHECK_VERSION#v})"; then
        log "staticcheck $STATICCHECK_VERSION present"
        return 0
    fi
    log "installing staticcheck $STATICCHECK_VERSION"
    go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
}

# nfpm, pinned by packaging/tool/go.mod: fetched and built here, so `make
# package` (and its tests) then work offline.
setup_nfpm() {
    go tool -modfile=packaging/tool/go.mod nfpm --version >/dev/null
    log "nfpm $(sed -n 's/^\tgithub.com\/goreleaser\/nfpm\/v2 \(v[^ ]*\).*/\1/p' packaging/tool/go.mod) present"
}

install_system_packages
check_go
setup_venv .venv tests/requirements.txt \
    'ZODB.FileStorage, ZODB.scripts.fstest, BTrees.OOBTree, zc.lockfile, pytest, ZEO.ClientStorage, ZEO.runzeo, msgpack, ZODB.tests.BasicStorage'
setup_venv .venv-zrs tests/requirements-zrs.txt \
    'zc.zrs.primary, zc.zrs.secondary, ZODB.FileStorage, BTrees.OOBTree'
setup_staticcheck
setup_nfpm
log "ok"
