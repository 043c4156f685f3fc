"""Server-rendered SVG bar charts: no script, no CDN, readable without colour."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 640, 200, 24


def bars(rows: list[dict[str, Any]], value: str = "revenue_micro",
         second: str = "wholesale_micro", title: str = "Revenue and wholesale cost per day"
         ) -> Markup:
    """Pairs of bars (``value`` and ``second``) per row, labelled by ``key``."""
    if not rows:
        return Markup("")
    top = max(max(row[value] or 0, row[second] or 0) for row in rows) or 1
    slot = (WIDTH - 2 * PAD) / len(rows)
    bar = max(slot / 2 - 2, 1)
    parts = [f'<svg role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'width="100%" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for index, row in enumerate(rows):
        x = PAD + index * slot
        for offset, name, fill in ((0, value, "currentColor"), (bar + 2, second, "#9ca3af")):
            height = (row[name] or 0) / top * (HEIGHT - 2 * PAD)
            parts.append(f'<rect x="{x + offset:.1f}" y="{HEIGHT - PAD - height:.1f}" '
                         f'width="{bar:.1f}" height="{height:.1f}" fill="{fill}">'
                         f'<title>{escape(row["key"])} {escape(name)}: {row[name]}</title>'
                         '</rect>')
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 6}" font-size="9">'
                     f'{escape(str(row["key"])[5:])}</text>')
    parts.append("</svg>")
    # Every interpolated value above is escaped or a number.
    return Markup("".join(parts))  # noqa: S704
