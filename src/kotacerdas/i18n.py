"""Translations: Babel catalogues (Indonesian first, English second) and the request's language.

Message ids are English; the `id` catalogue holds the Indonesian text. The catalogues are read from the `.po`
files directly, so there is no compiled `.mo` artefact to keep in step.
"""

from __future__ import annotations

from contextvars import ContextVar
from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po
from babel.support import LazyProxy

LOCALE_DIR = Path(__file__).parent / "locale"
SUPPORTED_LOCALES = ("id", "en")
LANGUAGE_NAMES = {"id": "Bahasa Indonesia", "en": "English"}

_current_locale: ContextVar[str] = ContextVar("kotacerdas_locale", default="id")


def catalogue_path(locale: str) -> Path:
    """The `.po` file of a language."""
    return LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"


@cache
def _catalogue(locale: str) -> dict[str, str | tuple[str, ...]]:
    path = catalogue_path(locale)
    if not path.exists():
        return {}
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=locale)
    messages: dict[str, str | tuple[str, ...]] = {}
    for message in catalog:
        strings = message.string if isinstance(message.string, tuple | list) else (message.string,)
        # An untranslated plural entry is a tuple of empty strings; it must fall back to the msgid too.
        if not message.id or message.fuzzy or not all(strings):
            continue
        key = message.id[0] if isinstance(message.id, tuple | list) else message.id
        messages[key] = tuple(message.string) if isinstance(message.string, tuple | list) else message.string
    return messages


def get_locale() -> str:
    """The language of the current request (or worker task)."""
    return _current_locale.get()


def set_locale(locale: str):
    """Switch the current context's language; returns a token for `reset_locale`."""
    return _current_locale.set(locale if locale in SUPPORTED_LOCALES else "id")


def reset_locale(token) -> None:
    _current_locale.reset(token)


def gettext(message: str) -> str:
    """Translate `message` into the current language."""
    translated = _catalogue(get_locale()).get(message)
    return translated if isinstance(translated, str) and translated else message


def ngettext(singular: str, plural: str, n: int) -> str:
    """Translate a message with a count (Indonesian has one form)."""
    translated = _catalogue(get_locale()).get(singular)
    if isinstance(translated, tuple) and translated:
        return translated[0] if len(translated) == 1 or n == 1 else translated[1]
    if isinstance(translated, str) and translated:
        return translated
    return singular if n == 1 else plural


_ = gettext


def lazy_gettext(message: str) -> LazyProxy:
    """A message translated when it is shown, for text defined at import time."""
    return LazyProxy(gettext, message, enable_cache=False)


def negotiate_locale(*, query: str | None, cookie: str | None, accept_language: str | None, default: str) -> str:
    """Pick the language: an explicit ?lang=, then the cookie, then the browser's Accept-Language, then default."""
    for choice in (query, cookie):
        if choice in SUPPORTED_LOCALES:
            return choice
    if accept_language:
        ranked = []
        for index, part in enumerate(accept_language.split(",")):
            tag, _sep, params = part.strip().partition(";")
            quality = 1.0
            if params.strip().startswith("q="):
                try:
                    quality = float(params.strip()[2:])
                except ValueError:
                    quality = 0.0
            ranked.append((-quality, index, tag.strip().lower()[:2]))
        for _q, _i, tag in sorted(ranked):
            if tag in SUPPORTED_LOCALES:
                return tag
    return default
