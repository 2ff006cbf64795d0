#!/usr/bin/env bash
# Benchmarks of an older commit and of this checkout, side by side in one run:
#   scripts/bench-compare.sh <rev> [p1 p2 p3 p4 p5]
# Each benchmark runs for <rev> (a git worktree in $TMPDIR, on this checkout's .venv with
# PYTHONPATH pointing at the worktree) and then for the working tree, before the next benchmark
# starts, so both meet the same machine. The tables go to stdout, each headed by its side.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: scripts/bench-compare.sh <rev> [p1 p2 p3 p4 p5]}
shift
benches=("${@:-p1 p2 p3 p4 p5}")
read -r -a benches <<<"${benches[*]}"
old=${TMPDIR:-/tmp}/remit-bench-$(git rev-parse --short "$rev")
if [ ! -d "$old" ]; then git worktree add --detach "$old" "$rev" >/dev/null; fi
python=$PWD/.venv/bin/python
for b in "${benches[@]}"; do
    echo "=== $b at $(git -C "$old" rev-parse --short HEAD) (before)"
    (cd "$old" && PYTHONPATH="$old/src:$old" "$python" -m bench "$b")
    echo "=== $b at $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes') (after)"
    PYTHONPATH="$PWD/src:$PWD" "$python" -m bench "$b"
done
