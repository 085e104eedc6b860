"""What the HTML pages share about forms: reading a select box, showing a refused form again, the list filters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData

from kotacerdas.errors import DomainError, InvalidInput
from kotacerdas.i18n import _
from kotacerdas.web.templating import render


def chosen_agency_id(value: str, *, field: str, max_id: int) -> int | None:
    """The id picked in a select box of OPDs: None for the empty choice, InvalidInput naming `field` for a non-id."""
    value = value.strip()
    if not value:
        return None
    if not value.isdecimal() or not 1 <= int(value) <= max_id:
        raise InvalidInput(_("Choose an OPD from the list."), errors=[{"field": field, "reason": "format"}])
    return int(value)


def render_form(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    error: DomainError | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """A page with a form; a refused one is shown with the error's message, its field marked, and its status code.

    The template gets `error` (the message) and `error_field` (the first field the error names) for the macros in
    `_partials/forms.html`.
    """
    field = error.errors[0].get("field") if error is not None and error.errors else None
    return render(
        request,
        template,
        {**context, "error": error.detail if error else None, "error_field": field},
        status_code=error.status_code if error else status_code,
    )


def active_filter(value: str) -> bool | None:
    """The `?active=` filter of a list: "true" or "false", anything else means both."""
    return {"true": True, "false": False}.get(value)


def kept_filters(**values: str | None) -> dict[str, str]:
    """The filters that are set, for the links to the other pages of a list."""
    return {key: value for key, value in values.items() if value}


async def _posted_form(request: Request) -> FormData:
    """The multipart form, parsed once (the CSRF check reads the same one)."""
    return await request.form()


# A page's posted multipart form, for routes that read uploads beside the fields.
PostedForm = Annotated[FormData, Depends(_posted_form)]


def read_uploads(form: FormData, *, field: str, max_bytes: int, max_files: int) -> list[bytes]:
    """The bytes of the files uploaded in `field`. An empty file input sends a part without a file, skipped; each
    file is read to one byte past `max_bytes` at most, enough for the check to refuse it, and reading stops once
    there are more files than `max_files`."""
    files = []
    for item in form.getlist(field):
        if isinstance(item, str):
            continue
        item.file.seek(0)
        data = item.file.read(max_bytes + 1)
        if data:
            files.append(data)
        if len(files) > max_files:
            break
    return files
