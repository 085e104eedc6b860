"""Regions pages: the public list of kecamatan with their villages, and one region's page."""

from __future__ import annotations

import pytest


@pytest.mark.usefixtures("seeded")
def test_the_region_list_shows_each_kecamatan_with_its_villages(client):
    response = client.get("/wilayah", params={"lang": "en"})

    assert response.status_code == 200
    html = response.text
    assert "Kecamatan Muara Beliti" in html and 'href="/wilayah/16.05.09"' in html
    assert "Pasar Muara Beliti" in html and 'href="/wilayah/16.05.09.1003"' in html
    assert "14 kecamatan and 199 desa and kelurahan" in html


def test_the_region_list_before_seeding_says_so(client):
    response = client.get("/wilayah", params={"lang": "en"})

    assert response.status_code == 200
    assert "No regions have been loaded yet." in response.text


@pytest.mark.usefixtures("seeded")
def test_a_region_page_links_its_parent_and_children(client):
    html = client.get("/wilayah/16.05.09", params={"lang": "en"}).text

    assert "<h1>District Muara Beliti</h1>" in html
    assert 'href="/wilayah/16.05"' in html and 'href="/wilayah/16.05.09.1003"' in html
    assert "has not been imported yet" in html


@pytest.mark.usefixtures("imported")
def test_a_region_page_draws_the_imported_boundary(client):
    html = client.get("/wilayah/16.05.09.1003", params={"lang": "en"}).text

    assert '<svg viewBox="0 0 ' in html and 'role="img"' in html and '<path d="M' in html


def test_an_unknown_region_page_is_404(client):
    response = client.get("/wilayah/16.05.99")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
