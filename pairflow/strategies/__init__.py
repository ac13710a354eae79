"""Paper-trading strategies on the pair analytics: parameters and rules (pure, no I/O)."""
