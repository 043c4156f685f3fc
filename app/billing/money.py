"""Money is integer minor units plus a currency; this turns it into words for people."""

from __future__ import annotations

# Stripe's zero-decimal currencies: the amount is already in whole units.
ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg",
                          "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"})


def format_money(amount_minor: int, currency: str) -> str:
    code = currency.lower()
    if code in ZERO_DECIMAL:
        return f"{amount_minor:,} {code.upper()}"
    sign = "-" if amount_minor < 0 else ""
    units, cents = divmod(abs(amount_minor), 100)
    return f"{sign}{units:,}.{cents:02d} {code.upper()}"
