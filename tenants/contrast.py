"""WCAG 2.x colour contrast: what makes a brand colour readable with white text on it.

Pure functions on ``#rrggbb`` strings, shared by the branding check (which refuses a primary
colour white text cannot be read on) and the theme (which picks dark or light text for the
accent colour).
"""

from __future__ import annotations

WHITE = "#ffffff"
INK = "#111827"  # the dashboard's body text colour
AA_NORMAL_TEXT = 4.5


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(hex_colour: str) -> float:
    """Relative luminance of ``#rrggbb`` (0 black … 1 white)."""
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast_ratio(a: str, b: str) -> float:
    """The WCAG contrast ratio of two colours, 1 … 21."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def readable_on(background: str) -> str:
    """White or ink, whichever reads better on ``background``."""
    if contrast_ratio(background, WHITE) >= contrast_ratio(background, INK):
        return WHITE
    return INK


def white_text_problem(background: str) -> str | None:
    """A sentence saying why white text on ``background`` fails WCAG AA, or None."""
    ratio = contrast_ratio(background, WHITE)
    if ratio >= AA_NORMAL_TEXT:
        return None
    return (f"White text on {background} has a contrast of {ratio:.1f}:1; buttons and the "
            f"header need at least {AA_NORMAL_TEXT}:1 to be readable. Pick a darker colour.")
