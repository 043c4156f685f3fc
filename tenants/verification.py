"""The DNS TXT record that proves a reseller controls a custom domain.

Its name is neutral (``_domain-verification.<host>``): a reseller's customers may read DNS
too, and nothing there should name the platform. Domains added before the rename were told
to publish ``_albedo.<host>``; that record keeps counting for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from tenants.models import Domain

RECORD_PREFIX = "_domain-verification"
LEGACY_PREFIX = "_albedo"  # still accepted, never shown


def record_name(hostname: str) -> str:
    """The TXT record name a reseller is asked to publish."""
    return f"{RECORD_PREFIX}.{hostname}"


def accepted_record_names(hostname: str) -> tuple[str, ...]:
    return (record_name(hostname), f"{LEGACY_PREFIX}.{hostname}")


def proves_control(domain: Domain, lookup_txt: Callable[[str], Iterable[str]]) -> bool:
    """True when one of the accepted TXT records holds the domain's token.

    ``lookup_txt(name)`` returns that name's TXT strings (a DNS resolver, or a dict's get in
    tests); a lookup error counts as no record."""
    for name in accepted_record_names(domain.hostname):
        try:
            values = [v.strip().strip('"') for v in lookup_txt(name) or ()]
        except Exception:  # NXDOMAIN, timeouts: simply not proven by this name
            values = []
        if domain.verification_token in values:
            return True
    return False
