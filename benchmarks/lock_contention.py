"""Benchmark entry point; the code is in `pairflow.testing.lock_contention` (shared)."""

from pairflow.testing.lock_contention import main

if __name__ == "__main__":
    main()
