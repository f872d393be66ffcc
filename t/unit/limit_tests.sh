#!/bin/sh
# Builds and runs the rate limiter core's unit tests (t/unit/limit_tests.c).
# Run from the repository root: t/unit/limit_tests.sh [plain|asan|tsan]
# LIMIT_BENCH_CHECKS=0 skips the benchmark (default 1000000 checks per run).
set -e
mode=${1:-plain}
case $mode in
plain) san= ;;
asan) san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" ;;
tsan) san="-fsanitize=thread" ;;
*) echo "usage: $0 [plain|asan|tsan]" >&2; exit 2 ;;
esac
out=${BUILD:-build}/limit_tests-$mode
mkdir -p "$(dirname "$out")"
gcc -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
    -Wmissing-prototypes -pthread $san -Imod_redeem \
    t/unit/limit_tests.c mod_redeem/core/gcra.c -o "$out"
exec "$out"
