"""Side-by-side benchmarks: taskq and its peers on one Redis, run with ``python -m bench``.

Importing this package has no side effects; each library's adapter is imported only when
it is selected, so a missing peer (or an unfinished taskq) only skips its own column.
"""
