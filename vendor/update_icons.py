"""Font Awesome cut down to the icons the book shows: _static/icons/*.woff.

pydata-sphinx-theme draws its icons (the header's buttons, the sidebar's
arrows, admonition and link icons) with the Font Awesome 6 web fonts it
ships, whose every page load fetched two fonts of 1,400 and 500 icons:
268 KB decoded, for about 20 icons. This script keeps only the icons the
built book can show, subsetting the theme's own fonts (its .ttf files)
with fontTools into WOFF files, which _static/icons.css declares after the
theme's @font-face rules, so the browser fetches them instead:

    jupyter-book build .                 # README command (1)
    python vendor/update_icons.py        # reads _build/html, writes _static/icons/

The icons kept: every ``fa-NAME`` class in the built pages and in the
theme's JavaScript, and every glyph the theme's stylesheets draw themselves
(``content:`` and the ``--pst-icon-*`` variables: admonitions, links,
arrows). tests/test_browser.py fails a page that draws an icon the cut
fonts lack, naming it: run this script again (after a theme upgrade, or a
page that uses a new icon).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pydata_sphinx_theme
from fontTools import subset

ROOT = Path(__file__).resolve().parent.parent
THEME = Path(pydata_sphinx_theme.__file__).parent / "theme/pydata_sphinx_theme/static"
OUT = ROOT / "_static" / "icons"
# The faces _static/icons.css replaces: the theme's file name for each.
FONTS = ["fa-solid-900", "fa-brands-400"]
PRIVATE_USE = re.compile(r"[\ue000-\uf8ff]")


def icon_table(css: str) -> dict[str, int]:
    """``.fa-bars:before,.fa-navicon:before{content:"\\f0c9"}`` -> {"bars": 0xf0c9, ...}."""
    table = {}
    for selectors, code in re.findall(r"([^{}]+)\{content:\"\\([0-9a-f]{4,5})\"\}", css):
        for name in re.findall(r"\.fa-([a-z0-9-]+):before", selectors):
            table[name] = int(code, 16)
    return table


def drawn_by_stylesheets(css: str) -> set[int]:
    """Glyphs a stylesheet draws outside Font Awesome's table of icon classes."""
    found = set()
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        if re.fullmatch(r"(\.fa-[a-z0-9-]+:before,?)+", selectors.strip()):
            continue
        for value in re.findall(r"(?:content|--pst-icon[a-z-]*)\s*:\s*\"([^\"]*)\"", body):
            found |= {int(code, 16) for code in re.findall(r"\\([0-9a-f]{4,5})", value)}
            found |= {ord(char) for char in PRIVATE_USE.findall(value)}
    return found


def icons_used(html: Path) -> set[int]:
    styles = "".join((html / "_static/styles" / name).read_text(encoding="utf-8")
                     for name in ("pydata-sphinx-theme.css", "sphinx-book-theme.css"))
    table = icon_table(styles)
    texts = [path.read_text(encoding="utf-8") for path in html.rglob("*.html")
             if "_static" not in path.relative_to(html).parts]
    texts += [(html / "_static/scripts" / name).read_text(encoding="utf-8")
              for name in ("pydata-sphinx-theme.js", "sphinx-book-theme.js")]
    names = {name for text in texts for name in re.findall(r"\bfa-([a-z0-9-]+)", text)}
    return {table[name] for name in names if name in table} | drawn_by_stylesheets(styles)


def main(argv: list[str]) -> int:
    html = Path(argv[0]) if argv else ROOT / "_build" / "html"
    codes = icons_used(html)
    OUT.mkdir(parents=True, exist_ok=True)
    options = subset.Options()
    options.flavor = "woff"  # zlib: fontTools writes woff2 only with brotli installed
    options.layout_features = []
    options.name_IDs = ["*"]  # keep the licence and copyright names
    options.notdef_outline = True
    for name in FONTS:
        font = subset.load_font(str(THEME / f"vendor/fontawesome/webfonts/{name}.ttf"), options)
        kept = sorted(codes & set(font.getBestCmap()))
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=kept)
        subsetter.subset(font)
        path = OUT / f"{name}.woff"
        subset.save_font(font, str(path), options)
        print(f"{path.relative_to(ROOT)}: {len(kept)} icons, {path.stat().st_size / 1024:.1f} KB "
              f"({', '.join(f'{code:x}' for code in kept)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
