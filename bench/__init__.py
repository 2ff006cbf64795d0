"""remit's benchmarks (QUALITY.md, Performance). ``python -m bench [p1 p2 p3]``; BENCH_QUICK=1
runs each in a tiny mode that only checks it still works. No benchmark asserts a timing."""
