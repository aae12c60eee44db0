"""The demo application: a WebSocket tool-calling service on Postgres shaped like the daemon Sieve replaces,
a load generator, and the ``sieve demo`` run that ties them to the pipeline.

It is an application of Sieve, not part of it: it sits above both ``collectors`` and the pipeline core.
"""
