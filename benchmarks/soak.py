"""Benchmark entry point; the code lives in :mod:`pairflow.testing.soak` (shared with tests)."""

from pairflow.testing.soak import main

if __name__ == "__main__":
    main()
