"""English text that a page can show in the class's language: the library stays in English (the CLI
prints it as it is) and keeps, with each message, the template and values a translation is made from.

The dashboard's catalogs (locales/) hold every template marked here, with `Message(...)` or `N_(...)`.
"""

from typing import Self


class Message(str):
    """A message with variable parts: the English text, with `template` and `values` beside it."""

    template: str
    values: dict[str, object]

    def __new__(cls, template: str, **values: object) -> Self:
        text = super().__new__(cls, template.format(**values) if values else template)
        text.template, text.values = template, values
        return text

    def __getnewargs_ex__(self) -> tuple[tuple, dict]:
        """Made again from its template and values when unpickled (Streamlit's caches pickle)."""
        return (self.template,), self.values


def N_(text: str) -> str:
    """Marks a fixed English text for the catalogs; a page translates it when it shows it."""
    return text


class Messages(str):
    """Messages in a row (a list of changes, of settings): each is translated on its own."""

    parts: tuple[str, ...]
    separator: str

    def __new__(cls, parts: list[str], separator: str = ", ") -> Self:
        text = super().__new__(cls, separator.join(parts))
        text.parts, text.separator = tuple(parts), separator
        return text

    def __getnewargs__(self) -> tuple:
        return list(self.parts), self.separator


def to_record(text: object) -> object:
    """A message as JSON keeps it (a cache, a record): its template and values, so that it is still
    translated when read back with `from_record`. Plain text and numbers stay as they are."""
    if isinstance(text, Messages):
        return {"parts": [to_record(part) for part in text.parts], "separator": text.separator}
    if isinstance(text, Message):
        return {"template": text.template, "values": {name: to_record(value) for name, value in text.values.items()}}
    return text if text is None or isinstance(text, str | int | float | bool) else str(text)


def from_record(record: object) -> object:
    """What `to_record` kept, as it was; ValueError if a kept template does not fit its values."""
    if isinstance(record, dict) and isinstance(record.get("template"), str) and isinstance(record.get("values"), dict):
        values = {name: from_record(value) for name, value in record["values"].items()}
        try:
            record["template"].format(**values)  # every field filled, none left to a reader's surprise
            return Message(record["template"], **values)
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"a kept message does not fit its values: {error}") from None
    if isinstance(record, dict) and isinstance(record.get("parts"), list) and isinstance(record.get("separator"), str):
        return Messages([from_record(part) for part in record["parts"]], record["separator"])
    return record
