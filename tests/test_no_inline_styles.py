"""Pages carry no inline styles (issue 12): no style="…" attribute and no <style> element in
any page template, so every look comes from the one stylesheet (app/web/static/app.css, with
the tenant's colours as custom properties from /theme.css) and a Content-Security-Policy
without 'unsafe-inline' for styles holds. E-mail templates (templates/emails/) are exempt:
mail clients need inline styles."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


class _InlineStyles(HTMLParser):
    """Collects (line, tag) for every tag with a style attribute and every <style> element.
    Jinja expressions inside tags are just odd attributes to the parser; a macro argument
    named ``style`` in {{ … }} text is not a tag, so it is not counted."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "style" or any(name == "style" for name, _ in attrs):
            self.found.append((self.getpos()[0], tag))

    handle_startendtag = handle_starttag


def inline_styles(source: str) -> list[tuple[int, str]]:
    parser = _InlineStyles()
    parser.feed(source)
    parser.close()
    return parser.found


def page_templates() -> list[Path]:
    emails = TEMPLATES / "emails"
    return sorted(p for p in TEMPLATES.rglob("*.html") if emails not in p.parents)


def test_the_check_sees_inline_styles_in_every_form():
    assert inline_styles('<p class="x" style="margin:0">a</p>') == [(1, "p")]
    assert inline_styles("<div>\n<span STYLE='color:red'>a</span></div>") == [(2, "span")]
    assert inline_styles('<img src="{{ x }}" style="width:{{ w }}%"/>') == [(1, "img")]
    assert inline_styles("<style>.a{}</style>") == [(1, "style")]
    assert inline_styles('<td{% if x %} class="a"{% endif %} style="x">') != []
    # Not inline styles: a macro's argument, a class, script setting a custom property.
    assert inline_styles("{{ confirm_button(url, 'Go', 'Sure?', style='danger') }}") == []
    assert inline_styles('<p class="style">a</p><script>e.style.setProperty("--a", 1)</script>'
                         ) == []


def test_no_page_template_has_an_inline_style():
    templates = page_templates()
    assert len(templates) > 50 and all("emails" not in p.parts for p in templates)
    found = {str(p.relative_to(TEMPLATES)): inline_styles(p.read_text(encoding="utf-8"))
             for p in templates}
    assert not {name: where for name, where in found.items() if where}, (
        "move these to classes in app/web/static/app.css")
