"""Streamlit + Plotly dashboard: a thin, read-only view of the flow's DuckDB tables.

``streamlit run dashboard`` runs :mod:`dashboard.streamlit_app`, the page skeleton
(sidebar, view selector, live fragment); :mod:`dashboard.launch` (``python -m
dashboard``, the demo, the tests) starts it through :mod:`dashboard.serve`, which imports
the page's modules before the first session. One module draws each view:
:mod:`dashboard.render_pair`, :mod:`dashboard.render_strategy`, :mod:`dashboard.scanner`,
:mod:`dashboard.render_health`, :mod:`dashboard.render_data` (shared display helpers in
:mod:`dashboard.ui`; settings and sidebar choices in :mod:`dashboard.app_config`; the
cached reads in :mod:`dashboard.app_data`). Reading, by job:
:mod:`dashboard.db` (read-only open with lock retry), :mod:`dashboard.pair_view` (the pair
view), :mod:`dashboard.cache` (downsampled buckets kept between refreshes),
:mod:`dashboard.pipeline_health` (pipeline health), :mod:`dashboard.snapshot` (one refresh),
:mod:`dashboard.redis_streams`. Presentation: the Plotly figures by view,
:mod:`dashboard.pair_charts`, :mod:`dashboard.strategy_charts` and
:mod:`dashboard.health_charts` (their shared look and helpers in
:mod:`dashboard.chart_base`), and :mod:`dashboard.export` (the Data tab's table and
CSV). Tables and columns
come from :mod:`sinks.schema`. The dashboard computes no statistics; it only reads
(and downsamples) what the flow wrote.
"""
