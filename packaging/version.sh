#!/usr/bin/env bash
# Usage: packaging/version.sh VERSION
#
# Print the package version for a zrs build VERSION (what `git describe
# --tags --always --dirty` gives, and what `zrs version` prints). Debian and
# RPM both refuse a '-' inside an upstream version and want it to start with
# a digit, and both sort '~' before anything (a pre-release) and '+' after
# (a later build), so:
#
#   v1.2.3                  -> 1.2.3
#   v1.2.3-rc.1             -> 1.2.3~rc.1
#   v1.2.3-4-gabc1234       -> 1.2.3+git4.gabc1234
#   v1.2.3-4-gabc1234-dirty -> 1.2.3+git4.gabc1234.dirty
#   v1.2.3-dirty            -> 1.2.3+dirty
#   abc1234 (no tag yet)    -> 0.0.0+git.abc1234
#   abc1234-dirty           -> 0.0.0+git.abc1234.dirty
#   dev (no git)            -> 0.0.0+dev
#
# Anything else is refused rather than guessed at.
set -euo pipefail

die() { printf 'packaging/version.sh: %s\n' "$*" >&2; exit 1; }

(($# == 1)) || die "usage: packaging/version.sh VERSION"
v=$1 dirty=
if [[ $v == *-dirty ]]; then dirty=dirty v=${v%-dirty}; fi

tag='^v?([0-9]+\.[0-9]+\.[0-9]+)(-([0-9A-Za-z.]*[A-Za-z][0-9A-Za-z.]*))?(-([0-9]+)-(g[0-9a-f]+))?$'
if [[ $v =~ $tag ]]; then
    out=${BASH_REMATCH[1]}
    [[ -z ${BASH_REMATCH[3]} ]] || out+="~${BASH_REMATCH[3]}"
    build=
    [[ -z ${BASH_REMATCH[4]} ]] || build="git${BASH_REMATCH[5]}.${BASH_REMATCH[6]}"
elif [[ $v =~ ^[0-9a-f]{7,40}$ ]]; then
    out=0.0.0 build="git.$v"
elif [[ $v == dev && -z $dirty ]]; then
    out=0.0.0 build=dev
else
    die "cannot turn version \"$1\" into a package version (want vX.Y.Z[-pre][-N-gHASH][-dirty], a bare commit hash, or dev)"
fi
build=${build:+$build${dirty:+.}}$dirty
printf '%s\n' "$out${build:++$build}"
