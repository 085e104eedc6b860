"""Keep the translation catalogues in step with the source (a developer tool, run from a checkout).

    python -m kotacerdas.i18n_tools update [--merge-json FILE ...]
        Extract every message from the code and templates (as `babel.cfg` says), merge them into the `id` and
        `en` catalogues: existing translations are kept, new messages start empty, obsolete ones are removed.
        `--merge-json` fills Indonesian translations from flat JSON files ({"English msgid": "Indonesian"}).
    python -m kotacerdas.i18n_tools check
        Exit 1 and list every message that has no Indonesian translation.

Message ids are English, so the `en` catalogue may stay empty: an empty translation shows the msgid.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_file
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po, write_po
from babel.util import pathmatch

from kotacerdas import __version__
from kotacerdas.i18n import SUPPORTED_LOCALES, catalogue_path

REPO_ROOT = Path(__file__).resolve().parents[2]
MAPPING_FILE = "babel.cfg"
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None}
COMMENT_TAGS = ("Translators:",)
SOURCE_LOCALE = "en"
TRANSLATED_LOCALE = "id"
PO_WIDTH = 116
LANGUAGE_TEAMS = {"id": "Bahasa Indonesia", "en": "English"}


class ToolError(Exception):
    """Something the developer must fix before the tool can run (a missing babel.cfg, a bad JSON file)."""


@dataclass
class UpdateResult:
    """What an update changed, for the summary printed at the end."""

    messages: int = 0
    written: list[Path] = field(default_factory=list)
    untranslated: list[str] = field(default_factory=list)
    filled: int = 0
    changed_by_json: list[str] = field(default_factory=list)
    unknown_in_json: list[str] = field(default_factory=list)


def _source_files(root: Path) -> Iterable[Path]:
    for path in sorted((root / "src").rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not any(part.startswith((".", "__pycache__")) for part in relative.parts):
            yield path


def extract_messages(root: Path | None = None) -> Catalog:
    """Every translatable message of the source under `root`, as a template catalogue without translations."""
    root = root or REPO_ROOT
    mapping = root / MAPPING_FILE
    if not mapping.exists():
        raise ToolError(f"{mapping} not found: run this tool from a kotacerdas checkout")
    with mapping.open(encoding="utf-8") as handle:
        method_map, options_map = parse_mapping_cfg(handle, str(mapping))
    template = Catalog(project="kotacerdas", version=__version__, fuzzy=False)
    for path in _source_files(root):
        relative = path.relative_to(root).as_posix()
        for pattern, method in method_map:
            if not pathmatch(pattern, relative):
                continue
            for lineno, message, comments, context in extract_from_file(
                method,
                path,
                keywords=KEYWORDS,
                comment_tags=COMMENT_TAGS,
                options=options_map.get(pattern, {}),
                strip_comment_tags=True,
            ):
                template.add(message, None, [(relative, lineno)], auto_comments=comments, context=context)
            break
    return template


def read_catalogue(locale: str) -> Catalog | None:
    """The stored catalogue of `locale`, or None when there is none yet."""
    path = catalogue_path(locale)
    if not path.exists():
        return None
    with path.open("rb") as handle:
        return read_po(handle, locale=locale)


def _empty_string(catalogue: Catalog, msgid: str | Sequence[str]) -> str | tuple[str, ...]:
    return ("",) * catalogue.num_plurals if isinstance(msgid, tuple | list) else ""


def _carry_over(new: Catalog, msgid, previous: Message | None) -> str | tuple[str, ...]:
    """The previous translation, reshaped if the message gained or lost its plural form."""
    empty = _empty_string(new, msgid)
    if previous is None or not previous.string:
        return empty
    old = previous.string
    if isinstance(empty, tuple):
        forms = tuple(old) if isinstance(old, tuple | list) else (old,)
        return tuple((forms + (forms[-1],) * len(empty))[: len(empty)])
    return old[0] if isinstance(old, tuple | list) else old


def is_translated(message: Message | None) -> bool:
    """True when a message has a non-fuzzy translation in every plural form."""
    if message is None or message.fuzzy or not message.string:
        return False
    strings = message.string if isinstance(message.string, tuple | list) else (message.string,)
    return all(strings)


def _singular(msgid: str | Sequence[str]) -> str:
    return msgid if isinstance(msgid, str) else msgid[0]


def merge_catalogue(
    template: Catalog, locale: str, previous: Catalog | None, *, fill: Mapping[str, str | list[str]] | None = None
) -> tuple[Catalog, UpdateResult]:
    """A catalogue for `locale` with exactly the template's messages, translations carried over from `previous`."""
    result = UpdateResult()
    now = datetime.now(UTC)
    catalogue = Catalog(
        locale=locale,
        domain="messages",
        project="kotacerdas",
        version=__version__,
        header_comment=(
            f"# {LANGUAGE_TEAMS.get(locale, locale)} translations of kotacerdas. Message ids are the English text.\n"
            "# Update with `python -m kotacerdas.i18n_tools update`; see babel.cfg for where messages come from."
        ),
        copyright_holder="kotacerdas contributors",
        last_translator="kotacerdas contributors",
        language_team=LANGUAGE_TEAMS.get(locale, locale),
        creation_date=previous.creation_date if previous else now,
        revision_date=previous.revision_date if previous else now,
        fuzzy=False,
    )
    catalogue.msgid_bugs_address = ""  # the constructor turns an empty address into a placeholder
    fill = dict(fill or {})
    used: set[str] = set()
    for message in template:
        if not message.id:
            continue
        old = previous.get(message.id, message.context) if previous else None
        string = _carry_over(catalogue, message.id, old)
        flags = {flag for flag in message.flags if flag != "fuzzy"}
        if old is not None and old.fuzzy:
            flags.add("fuzzy")
        key = _singular(message.id)
        if key in fill:
            used.add(key)
            value = fill[key]
            forms = tuple(value) if isinstance(value, list) else (value,)
            new_string = (
                tuple((forms + (forms[-1],) * catalogue.num_plurals)[: catalogue.num_plurals])
                if isinstance(string, tuple)
                else forms[0]
            )
            if new_string != string:
                if is_translated(old):
                    result.changed_by_json.append(key)
                result.filled += 1
                string = new_string
                flags.discard("fuzzy")
        catalogue.add(
            message.id,
            string,
            locations=message.locations,
            flags=flags,
            auto_comments=message.auto_comments,
            user_comments=old.user_comments if old is not None else (),
            context=message.context,
        )
        if not is_translated(catalogue.get(message.id, message.context)):
            result.untranslated.append(key)
        result.messages += 1
    result.unknown_in_json = sorted(set(fill) - used)
    return catalogue, result


def render_catalogue(catalogue: Catalog) -> bytes:
    """The `.po` text of a catalogue: sorted by msgid, file locations without line numbers (quieter diffs)."""
    buffer = io.BytesIO()
    write_po(buffer, catalogue, width=PO_WIDTH, sort_output=True, include_lineno=False, ignore_obsolete=True)
    return buffer.getvalue()


def write_catalogue(catalogue: Catalog, path: Path) -> bool:
    """Write `catalogue` to `path` if its content changed; the revision date moves only then. True if written."""
    content = render_catalogue(catalogue)
    if path.exists() and path.read_bytes() == content:
        return False
    catalogue.revision_date = datetime.now(UTC)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render_catalogue(catalogue))
    return True


def load_json_translations(files: Iterable[Path]) -> dict[str, str | list[str]]:
    """Indonesian translations from flat JSON files {msgid: text}; a later file wins over an earlier one."""
    merged: dict[str, str | list[str]] = {}
    for path in files:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ToolError(f"{path}: cannot read JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ToolError(f"{path}: expected a JSON object mapping English msgids to Indonesian text")
        for key, value in data.items():
            valid = isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
            if not valid or not value:
                raise ToolError(f"{path}: the translation of {key!r} must be a non-empty string")
            merged[key] = value
    return merged


def update(*, root: Path | None = None, json_files: Sequence[Path] = ()) -> UpdateResult:
    """Extract the messages and merge them into every catalogue; JSON files fill the Indonesian one."""
    template = extract_messages(root)
    fill = load_json_translations(json_files)
    summary = UpdateResult()
    for locale in SUPPORTED_LOCALES:
        catalogue, result = merge_catalogue(
            template, locale, read_catalogue(locale), fill=fill if locale == TRANSLATED_LOCALE else None
        )
        if write_catalogue(catalogue, catalogue_path(locale)):
            summary.written.append(catalogue_path(locale))
        if locale == TRANSLATED_LOCALE:
            summary.messages = result.messages
            summary.untranslated = result.untranslated
            summary.filled = result.filled
            summary.changed_by_json = result.changed_by_json
            summary.unknown_in_json = result.unknown_in_json
    return summary


def missing_translations(template: Catalog | None = None, catalogue: Catalog | None = None) -> list[str]:
    """Every extracted msgid without an Indonesian translation (what an Indonesian user would see in English)."""
    template = template if template is not None else extract_messages()
    catalogue = catalogue if catalogue is not None else read_catalogue(TRANSLATED_LOCALE)
    missing = []
    for message in template:
        if not message.id:
            continue
        stored = catalogue.get(message.id, message.context) if catalogue is not None else None
        if not is_translated(stored):
            missing.append(_singular(message.id))
    return sorted(set(missing))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m kotacerdas.i18n_tools", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    update_parser = commands.add_parser("update", help="extract messages and merge them into the catalogues")
    update_parser.add_argument(
        "--merge-json", nargs="+", type=Path, default=[], metavar="FILE", help="flat JSON {msgid: Indonesian}"
    )
    commands.add_parser("check", help="exit 1 when a message has no Indonesian translation")
    args = parser.parse_args(argv)
    try:
        if args.command == "update":
            result = update(json_files=args.merge_json)
            for path in result.written:
                print(f"wrote {path}")
            print(
                f"{result.messages} messages; {len(result.untranslated)} without an Indonesian translation"
                + (" (`check` lists them)" if result.untranslated else "")
            )
            if args.merge_json:
                print(f"{result.filled} translations filled from JSON")
            for msgid in result.changed_by_json:
                print(f"replaced an existing translation from JSON: {msgid!r}")
            for msgid in result.unknown_in_json:
                print(f"not in the source (ignored): {msgid!r}", file=sys.stderr)
            return 0
        missing = missing_translations()
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if missing:
        print(f"{len(missing)} messages have no Indonesian translation:", file=sys.stderr)
        for msgid in missing:
            print(f"  {msgid!r}", file=sys.stderr)
        return 1
    print("every message has an Indonesian translation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
