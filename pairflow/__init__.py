"""pairflow: real-time crypto pair-trading analytics as one Bytewax dataflow.

Shared plumbing lives here (configuration, records, time conversion); the stages of
the flow live in the top-level ``sources``, ``operators`` and ``sinks`` packages.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
