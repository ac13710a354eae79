"""The Data view: the current pair view as a table, with a CSV download.

The table itself comes from :mod:`dashboard.export`.
"""

from __future__ import annotations

import streamlit as st

from dashboard import export, pair_view

PREVIEW_ROWS = 200


def render_data_tab(view: pair_view.ViewData) -> None:
    """The current view as a table, with a CSV download."""
    req = view.request
    stamp = view.end.strftime("%Y%m%dT%H%M%SZ") if view.end else "empty"
    name = f"pairflow_{req.y}-{req.x}_{req.tf}_{stamp}.csv"
    st.download_button(
        "Download CSV of the current view",
        data=lambda: export.view_table(view).to_csv(index=False).encode(),
        file_name=name,
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
        key="download_csv",
    )
    preview = export.view_table(view, last=PREVIEW_ROWS)
    st.caption(
        f"{len(view.leg(req.y)):,} rows in the view (one per bucket); the newest "
        f"{len(preview):,} below, newest first."
    )
    st.dataframe(preview.iloc[::-1], hide_index=True, width="stretch", height=360)
