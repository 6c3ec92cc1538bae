#!/usr/bin/env python3
"""Benchmark of the kmeans PostgreSQL extension against scikit-learn, FAISS and tslearn: the
entry point of the kmbench package beside it (bench/kmbench/, found because Python puts this
file's folder first on sys.path).  Run `bench/bench.py --help`; bench/README.md explains the
output."""

from kmbench.cli import main

if __name__ == "__main__":
    main()
