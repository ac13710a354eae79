"""Multiple-testing correction for the pair scanner (no statsmodels at run time).

:func:`bh_qvalues` is Benjamini-Hochberg's step-up adjustment written with the same
floating-point operations, in the same order, as
``statsmodels.stats.multitest.multipletests(p, method="fdr_bh")[1]``, so the
results are bit-identical (``tests/test_scan.py`` checks it), at a fraction of the
cost (no import of statsmodels, no argument validation; see ``bh_qvalues``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bh_qvalues(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order.

    For sorted p-values ``p_(1) <= ... <= p_(m)``:
    ``q_(i) = min(1, min_{j >= i} p_(j) / (j / m))``.

    Args:
        pvalues: The m p-values (finite, in [0, 1]); may be empty.

    Returns:
        A float64 array of q-values, same length and order as ``pvalues``.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.shape[0]
    if m == 0:
        return np.empty(0, dtype=np.float64)
    order = np.argsort(p)
    p_sorted = np.take(p, order)
    ecdf = np.arange(1, m + 1) / float(m)
    q_sorted = np.minimum.accumulate((p_sorted / ecdf)[::-1])[::-1]
    q_sorted[q_sorted > 1] = 1
    out = np.empty_like(q_sorted)
    out[order] = q_sorted
    return out
