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


def parse_money(text: str, currency: str) -> int:
    """``"19.00"`` in ``currency`` as minor units (1900); ValueError when it is not an amount.

    Zero-decimal currencies take whole units only, others at most two decimals.
    """
    from decimal import Decimal, InvalidOperation

    try:
        amount = Decimal((text or "").strip().replace(",", ""))
    except InvalidOperation:
        raise ValueError("must be an amount such as 19.00") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError("must be an amount, 0 or more")
    scale = 1 if currency.lower() in ZERO_DECIMAL else 100
    minor = amount * scale
    if minor != minor.to_integral_value():
        raise ValueError("has more decimals than the currency allows")
    return int(minor)
