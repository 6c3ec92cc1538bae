"""python3 -m kmbench (from bench/): the same as bench/bench.py."""

from .cli import main

main()
