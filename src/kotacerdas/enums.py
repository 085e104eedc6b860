"""Base for enums whose values carry their Indonesian and English labels and a colour in one place."""

from __future__ import annotations

from enum import StrEnum

from kotacerdas.i18n import get_locale


class LabelledEnum(StrEnum):
    """A string enum whose members are declared as (value, label_id, label_en[, colour])."""

    def __new__(cls, value: str, label_id: str, label_en: str, colour: str = "#5f6b7a"):
        member = str.__new__(cls, value)
        member._value_ = value
        member.label_id = label_id
        member.label_en = label_en
        member.colour = colour
        return member

    @property
    def label(self) -> str:
        """The label in the current request's language."""
        return self.label_en if get_locale() == "en" else self.label_id

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        """(value, label) pairs for a select box, in the current language."""
        return [(member.value, member.label) for member in cls]
