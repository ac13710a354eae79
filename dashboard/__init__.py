"""Streamlit + Plotly dashboard: a thin, read-only view of the flow's DuckDB tables.

``streamlit run dashboard`` runs :mod:`dashboard.streamlit_app`. All SQL lives in
:mod:`dashboard.queries` and every Plotly figure in :mod:`dashboard.charts`; the
dashboard computes no statistics, it only reads (and downsamples) what the flow wrote.
"""
