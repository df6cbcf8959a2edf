#!/usr/bin/env bash
# Prints xent's fingerprint to stdout: the bit-for-bit check of a change meant to keep behaviour
# (issue 18's redesign, or any refactor). Record it before the change and diff it after:
#
#   bash scripts/fingerprint.sh > before.txt
#   ... the change ...
#   bash scripts/fingerprint.sh > after.txt && diff before.txt after.txt
#
# It prints, in order:
#   1. `cargo run --example fingerprint`: for a fixed, seeded set of requests (every loss, input
#      kind, reduction, option, dtype, a range of shapes, bad requests, vocabulary shards, and on
#      each GPU device-resident requests and shards), one line per engine and case with an FNV-1a
#      64 hash of the bits of what it returned (loss, values, lse, gradient, shard statistics,
#      error text), then per engine the hash of all its lines. See examples/fingerprint/main.rs.
#   2. `xent verify --seed 18`: every engine against the float64 reference, with its errors.
#   3. The exit code of each.
# Neither prints timings or anything else that varies between runs on one machine, so nothing is
# filtered out. Engines are named by backend and adapter (the fast CPU path's name holds its
# thread count), so compare fingerprints taken on the same machine.
#
# Release mode, as the tests: the example takes under a minute on two cores with lavapipe and
# llvmpipe, verify about two. Cargo's own progress goes to stderr. Exits non-zero when either
# command does.
set -uo pipefail
cd "$(dirname "$0")/.."

# Mesa's device_select Vulkan layer prints to stderr without a desktop session, and only reorders
# devices, which xent ranks itself.
export NODEVICE_SELECT=1

cargo run --release --locked --example fingerprint
example=$?
cargo run --release --locked --quiet -- verify --seed 18
verify=$?
echo "fingerprint example exit code: $example"
echo "xent verify exit code: $verify"
[[ $example -eq 0 && $verify -eq 0 ]]
