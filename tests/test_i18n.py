"""Translations: every message reaches an Indonesian user in Indonesian; the language switch and the tooling work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kotacerdas import i18n, i18n_tools
from kotacerdas.i18n import ngettext, reset_locale, set_locale


@pytest.fixture(scope="module")
def extracted():
    return i18n_tools.extract_messages()


def test_every_message_has_an_indonesian_translation(extracted):
    missing = i18n_tools.missing_translations(extracted, i18n_tools.read_catalogue("id"))
    assert not missing, (
        f"{len(missing)} messages would reach an Indonesian user in English; translate them in "
        "src/kotacerdas/locale/id/LC_MESSAGES/messages.po (python -m kotacerdas.i18n_tools update "
        "--merge-json FILE fills them from a JSON file):\n" + "\n".join(missing)
    )


def test_catalogues_hold_exactly_the_messages_of_the_source(extracted):
    wanted = {i18n_tools._singular(message.id) for message in extracted if message.id}
    for locale in ("id", "en"):
        stored = {i18n_tools._singular(m.id) for m in i18n_tools.read_catalogue(locale) if m.id}
        assert stored == wanted, f"run `python -m kotacerdas.i18n_tools update` ({locale}: {stored ^ wanted})"


def test_extraction_finds_python_and_template_messages(extracted):
    by_id = {i18n_tools._singular(message.id): message for message in extracted if message.id}
    assert "src/kotacerdas/app.py" in {path for path, _line in by_id["Not found"].locations}
    assert "src/kotacerdas/web/templates/base.html" in {path for path, _line in by_id["Skip to content"].locations}
    assert "src/kotacerdas/charts.py" in {path for path, _line in by_id["No data"].locations}


def test_lang_switches_a_page_to_english_and_is_remembered(client):
    response = client.get("/?lang=en")
    assert response.status_code == 200
    assert '<html lang="en">' in response.text
    assert "Skip to content" in response.text
    assert response.headers["content-language"] == "en"
    assert "kc_lang=en" in response.headers["set-cookie"]
    # The cookie keeps the choice on the next page without ?lang=.
    again = client.get("/")
    assert '<html lang="en">' in again.text
    back = client.get("/?lang=id")
    assert "Lewati ke konten" in back.text


def test_accept_language_gives_english_problem_json(client):
    response = client.get("/api/v1/tidak-ada", headers={"Accept-Language": "en-GB,en;q=0.9,id;q=0.5"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["title"] == "Not found"
    assert response.json()["detail"] == "The page or item you asked for does not exist."


def test_indonesian_problem_json_by_default(client):
    body = client.get("/api/v1/tidak-ada").json()
    assert body["title"] == "Tidak ditemukan"
    assert body["detail"] == "Halaman atau data yang Anda minta tidak ada."


def test_untranslated_plural_falls_back_to_the_english_forms():
    token = set_locale("en")
    try:
        assert ngettext("%(num)d apple", "%(num)d apples", 1) == "%(num)d apple"
        assert ngettext("%(num)d apple", "%(num)d apples", 3) == "%(num)d apples"
        for message in i18n_tools.read_catalogue("en"):
            if isinstance(message.id, tuple):
                # The en catalogue is empty on purpose: an empty plural entry must show the English msgid.
                assert ngettext(message.id[0], message.id[1], 2) == message.id[1]
    finally:
        reset_locale(token)


# --- the tool on a scratch source tree --------------------------------------------------------------------------

MAPPING = """
[python: src/kotacerdas/**.py]

[jinja2: src/kotacerdas/web/templates/**.html]
extensions = jinja2.ext.i18n
newstyle_gettext = true
silent = false
"""


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A tiny source tree with its own catalogues, so the tool can be run without touching the real ones."""
    (tmp_path / "babel.cfg").write_text(MAPPING)
    package = tmp_path / "src" / "kotacerdas"
    (package / "web" / "templates").mkdir(parents=True)
    locale_dir = package / "locale"
    monkeypatch.setattr(i18n_tools, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(
        i18n_tools, "catalogue_path", lambda locale: locale_dir / locale / "LC_MESSAGES" / "messages.po"
    )

    def write(code: str, template: str) -> None:
        (package / "mod.py").write_text(code)
        (package / "web" / "templates" / "page.html").write_text(template)

    return write, locale_dir


def test_update_merges_keeps_translations_and_drops_obsolete(scratch, tmp_path, capsys):
    write, locale_dir = scratch
    write(
        'from kotacerdas.i18n import _, lazy_gettext, ngettext\n_("Road")\nlazy_gettext("Bridge")\n'
        'ngettext("%(num)d report", "%(num)d reports", 2)\n',
        '<p>{{ _("Hello, %(name)s", name=user) }}</p>{% trans %}Flood{% endtrans %}',
    )
    assert i18n_tools.main(["update"]) == 0
    id_po = locale_dir / "id" / "LC_MESSAGES" / "messages.po"
    en_po = locale_dir / "en" / "LC_MESSAGES" / "messages.po"
    assert id_po.exists() and en_po.exists()
    assert i18n_tools.main(["check"]) == 1
    assert "'Road'" in capsys.readouterr().err

    fill = tmp_path / "t.json"
    fill.write_text(json.dumps({"Road": "Jalan", "Bridge": "Jembatan", "Elsewhere": "Di tempat lain"}))
    assert i18n_tools.main(["update", "--merge-json", str(fill)]) == 0
    out = capsys.readouterr()
    assert "2 translations filled from JSON" in out.out
    assert "'Elsewhere'" in out.err  # a msgid the source does not have is reported, not added

    # The source changes: "Bridge" goes, "Sensor" comes; "Road" keeps its translation.
    write(
        'from kotacerdas.i18n import _, ngettext\n_("Road")\n_("Sensor")\n'
        'ngettext("%(num)d report", "%(num)d reports", 2)\n',
        '<p>{{ _("Hello, %(name)s", name=user) }}</p>{% trans %}Flood{% endtrans %}',
    )
    i18n_tools.update()
    catalogue = i18n_tools.read_catalogue("id")
    ids = {i18n_tools._singular(m.id): m for m in catalogue if m.id}
    assert ids["Road"].string == "Jalan"
    assert ids["Sensor"].string == ""
    assert "Bridge" not in ids
    assert ids["%(num)d report"].string == ("",)  # Indonesian has one plural form
    assert "Bridge" not in id_po.read_text()  # no obsolete (#~) entries either

    second = {
        "Sensor": "Sensor",
        "Hello, %(name)s": "Halo, %(name)s",
        "Flood": "Banjir",
        "%(num)d report": "%(num)d laporan",
    }
    fill.write_text(json.dumps(second))
    i18n_tools.update(json_files=[fill])
    assert i18n_tools.main(["check"]) == 0

    # A second run with nothing new leaves the files byte for byte as they are (no date churn).
    before = (id_po.read_bytes(), en_po.read_bytes())
    assert i18n_tools.update().written == []
    assert (id_po.read_bytes(), en_po.read_bytes()) == before


def test_catalogue_is_read_from_the_po_file(scratch, monkeypatch):
    write, locale_dir = scratch
    write('from kotacerdas.i18n import _\n_("Road")\n', "")
    fill = locale_dir.parent / "t.json"
    fill.write_text(json.dumps({"Road": "Jalan"}))
    i18n_tools.update(json_files=[fill])
    monkeypatch.setattr(i18n, "catalogue_path", i18n_tools.catalogue_path)
    i18n._catalogue.cache_clear()
    token = set_locale("id")
    try:
        assert i18n.gettext("Road") == "Jalan"
        assert i18n.gettext("Unknown") == "Unknown"
    finally:
        reset_locale(token)
        i18n._catalogue.cache_clear()


def test_bad_json_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('["not", "an", "object"]')
    assert i18n_tools.main(["update", "--merge-json", str(bad)]) == 2
    assert "expected a JSON object" in capsys.readouterr().err


def test_babel_cfg_is_at_the_repository_root():
    assert (Path(i18n_tools.REPO_ROOT) / "babel.cfg").exists()


def test_pages_stay_indonesian_for_a_browser_set_to_english(client):
    """An English phone still gets the Indonesian portal until the visitor picks English."""
    page = client.get("/", headers={"Accept-Language": "en-US,en;q=0.9"})

    assert page.headers["content-language"] == "id"
    assert 'lang="id"' in page.text
