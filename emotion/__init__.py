"""Class Mood's core: no Streamlit, shared by the pages, the CLI, the benchmarks and the tests.

NumPy's BLAS runs on one thread: with two cores shared by several classes, its own threads only contend (a
minute's bootstrap interval took 1.3 s instead of 0.1 s under load).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
