"""The ingest baseline: a bare Django view doing one INSERT of the raw body.

Served by the same gunicorn config as the product, on the same database, but a
separate settings module and URL conf: nothing here is reachable from `icmp.urls`.
"""
