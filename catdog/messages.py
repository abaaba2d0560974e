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
