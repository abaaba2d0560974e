"""Brings the catalogs in step with the sources: `python locales/refresh.py`.

Extracts every marked text (babel.cfg names the files; KEYWORDS the markers) and updates each
language's .po file: new texts arrive untranslated, removed ones go. Translate the empty msgstr
entries, then run tests/test_i18n.py, which fails while any is missing. The dashboard compiles the
.po files when it loads them, so nothing else is built.
"""

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
LOCALES = ROOT / "locales"
DOMAIN = "catdog"
TRANSLATED = ("es", "de")
# _() and ngettext() in the dashboard, N_() and Message() in the library (catdog/messages.py).
KEYWORDS = {"_": None, "N_": None, "Message": None, "ngettext": (1, 2)}


def po_path(language: str) -> Path:
    return LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def extract() -> Catalog:
    """Every marked text of the sources, as a template catalog."""
    with open(ROOT / "babel.cfg") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    template = Catalog(domain=DOMAIN, project="catdog")
    for _file, _line, message, comments, _context in extract_from_dir(
        ROOT, method_map, options_map, keywords=KEYWORDS, strip_comment_tags=True
    ):
        template.add(
            message, None, auto_comments=comments, flags=("python-brace-format",) if "{" in str(message) else ()
        )
    return template


def refresh(language: str, template: Catalog) -> Catalog:
    path = po_path(language)
    if path.exists():
        with open(path, "rb") as po:
            catalog = read_po(po, locale=language, domain=DOMAIN)
    else:
        catalog = Catalog(locale=language, domain=DOMAIN, project="catdog")
    # No fuzzy matching: a guessed translation of a changed text is worse than an empty one.
    catalog.update(template, no_fuzzy_matching=True)
    catalog.obsolete.clear()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Sorted, without line numbers or a dated header: edits elsewhere leave the catalogs alone.
    with open(path, "wb") as po:
        write_po(po, catalog, no_location=True, sort_output=True, omit_header=True, width=120)
    return catalog


def main() -> None:
    template = extract()
    for language in TRANSLATED:
        catalog = refresh(language, template)
        missing = sum(1 for message in catalog if message.id and not message.string)
        print(f"{po_path(language).relative_to(ROOT)}: {len(template)} texts, {missing} to translate", file=sys.stderr)


if __name__ == "__main__":
    main()
