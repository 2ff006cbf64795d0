"""``python -m bench [p1] [p2] [p3] [p4] [p5]``: run the benchmarks (all of them by default)."""

from __future__ import annotations

import sys
import time

from bench import p1_authorize, p2_visible, p3_api_read, p4_lifecycle, p5_expiry
from bench.common import QUICK

BENCHMARKS = {
    "p1": p1_authorize.run,
    "p2": p2_visible.run,
    "p3": p3_api_read.run,
    "p4": p4_lifecycle.run,
    "p5": p5_expiry.run,
}


def main(argv: list[str]) -> int:
    chosen = argv or list(BENCHMARKS)
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    start = time.perf_counter()
    for name in chosen:
        BENCHMARKS[name]().print()
    mode = "quick mode" if QUICK else "full mode"
    print(f"\n{len(chosen)} benchmark(s) in {time.perf_counter() - start:.0f} s ({mode})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
