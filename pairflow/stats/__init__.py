"""Pure statistics of the pair analytics (no Bytewax, no I/O)."""
