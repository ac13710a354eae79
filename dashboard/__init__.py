"""Streamlit + Plotly dashboard: a thin, read-only view of the flow's DuckDB tables.

``streamlit run dashboard`` runs :mod:`dashboard.streamlit_app`. Reading, by job:
:mod:`dashboard.db` (read-only open with lock retry), :mod:`dashboard.pair_view` (the pair
view), :mod:`dashboard.cache` (downsampled buckets kept between refreshes),
:mod:`dashboard.pipeline_health` (pipeline health), :mod:`dashboard.snapshot` (one refresh),
:mod:`dashboard.redis_streams`. Presentation: :mod:`dashboard.charts` (every Plotly
figure), :mod:`dashboard.export` (the Data tab's table and CSV). Tables and columns
come from :mod:`sinks.schema`. The dashboard computes no statistics; it only reads
(and downsamples) what the flow wrote.
"""
