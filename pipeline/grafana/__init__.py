"""Sieve's Grafana objects: fixed uids and the committed dashboards (``resources``), data source payloads
(``datasources``), the HTTP push (``push``) and its command line (``cli``: ``sieve dashboards push``).

The dashboards themselves are generated at development time by the ``dashboards`` package of the repository
(``python -m dashboards``); this package only reads the committed JSON, so it needs no generator at run time.
"""
