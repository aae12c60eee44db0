"""Sieve's Grafana dashboards as code (grafana-foundation-sdk), generated into ``dashboards/grafana/*.json``.

``python -m dashboards`` regenerates the committed JSON; ``python -m dashboards --check`` says whether it is up to
date. ``dashboards.promql`` checks PromQL (panels here, alert rules elsewhere) against ``pipeline.names``.
The JSON reaches Grafana by file provisioning (``dashboards/provisioning``) or ``sieve dashboards push``.
"""

import warnings

# The SDK nudges towards the v2 (app-platform) dashboard schema. Sieve writes the classic JSON model on purpose:
# it is what /api/dashboards/db and file provisioning take on every Grafana from 10 to 13.
warnings.filterwarnings("ignore", message="Prefer using dashboardv2", category=DeprecationWarning)
