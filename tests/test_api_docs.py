"""The API documentation page works on a server with no internet access."""

from __future__ import annotations

import re


def test_docs_page_loads_swagger_ui_from_this_server(client):
    page = client.get("/api/docs")

    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    # Every script and stylesheet comes from this server, none from a CDN.
    assert all(asset.startswith("/") for asset in assets), assets
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    assert "/api/openapi.json" in page.text


def test_openapi_document_is_served(client):
    document = client.get("/api/openapi.json").json()

    assert document["openapi"].startswith("3.")
    assert "/api/v1/regions/locate" in document["paths"]
