"""/api/docs/: Swagger UI served from the project's own static files (works offline)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


@pytest.mark.django_db
def test_the_docs_page_loads_swagger_ui_only_from_local_static_files():
    client = Client()
    response = client.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assets = ASSET.findall(page)
    assert any(url.endswith("swagger-ui-bundle.js") for url in assets), assets
    assert any(url.endswith("swagger-ui.css") for url in assets), assets
    # No CDN (and so no `@latest` without integrity): nothing absolute or protocol-relative.
    assert not re.search(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}/", page), page
    assert "cdn.jsdelivr.net" not in page
    for url in assets:
        assert url.startswith("/static/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert b"".join(asset.streaming_content if asset.streaming else [asset.content])
