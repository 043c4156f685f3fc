"""The DNS TXT record that proves a reseller controls a custom domain, and the lookup.

Its name is neutral (``_domain-verification.<host>``): a reseller's customers may read DNS
too, and nothing there should name the platform. Domains added before the rename were told
to publish ``_albedo.<host>``; that record keeps counting for them, and is never shown.

The lookup is a real DNS query (dnspython) through the system's resolver, or through the
server ``ALBEDO_DNS_RESOLVER`` names (``host:port``; tests point it at
tests/fakes/dns_server.py). Each domain has its own random token, so one reseller's record
never proves another's domain. What went wrong is said in the reseller's words: no record
yet, a different value, DNS not answering, a failed lookup.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import dns.exception
import dns.resolver
from flask import current_app, has_app_context

from tenants.models import Domain

RECORD_PREFIX = "_domain-verification"
LEGACY_PREFIX = "_albedo"  # still accepted, never shown
RESOLVER_SETTING = "ALBEDO_DNS_RESOLVER"
RESOLVER_KEY = "albedo.dns_resolver"
# A reseller waits for the answer on its page: a few seconds, not the resolver's default 5 x 2.
LOOKUP_SECONDS = 4.0


class DnsConfigError(ValueError):
    """ALBEDO_DNS_RESOLVER is malformed; the message names it and the form it takes."""


def resolver_from(extra: Mapping[str, str]) -> tuple[str, int] | None:
    """``ALBEDO_DNS_RESOLVER`` as (IP address, port), or None for the system's resolver."""
    raw = (extra.get(RESOLVER_SETTING) or "").strip()
    if not raw:
        return None
    host, _, port = raw.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        number = 0
    if not 1 <= number <= 65535:
        raise DnsConfigError(f"{RESOLVER_SETTING} is a DNS server's IP address and port, "
                             f"such as 127.0.0.1:53 or [::1]:53, not {raw!r}")
    return host, number


def record_name(hostname: str) -> str:
    """The TXT record name a reseller is asked to publish."""
    return f"{RECORD_PREFIX}.{hostname}"


def accepted_record_names(hostname: str) -> tuple[str, ...]:
    return (record_name(hostname), f"{LEGACY_PREFIX}.{hostname}")


@dataclass(frozen=True)
class Outcome:
    """What a check found: verified, or why not (``code`` for the API, ``problem`` for people)."""

    verified: bool
    code: str | None = None
    problem: str | None = None


class _NotProven(Exception):
    def __init__(self, code: str):
        self.code = code


def _configured_resolver() -> tuple[str, int] | None:
    if not has_app_context():
        return None
    extensions = current_app.extensions
    if RESOLVER_KEY not in extensions:
        extensions[RESOLVER_KEY] = resolver_from(extensions["albedo.settings"].extra)
    return extensions[RESOLVER_KEY]


def dns_lookup(lifetime: float = LOOKUP_SECONDS) -> Callable[[str], list[str]]:
    """``lookup(name)``: the TXT strings of ``name``, by a real DNS query. Raises the reason
    as :class:`_NotProven` (``no_record``, ``timeout``, ``lookup_failed``)."""
    address = _configured_resolver()

    def lookup(name: str) -> list[str]:
        try:
            if address is None:
                resolver = dns.resolver.Resolver()
            else:
                resolver = dns.resolver.Resolver(configure=False)
                resolver.nameservers = [address[0]]
                resolver.port = address[1]
            resolver.timeout = resolver.lifetime = lifetime
            answer = resolver.resolve(name, "TXT", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            raise _NotProven("no_record") from None
        except dns.exception.Timeout:
            raise _NotProven("timeout") from None
        except dns.exception.DNSException:  # SERVFAIL everywhere, no resolver configured…
            raise _NotProven("lookup_failed") from None
        # A TXT record may be split in several strings; they are one value together.
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]

    return lookup


# What kept a domain from verifying, in a few words (the pages' "last checked" line).
OUTCOME_WORDS = {"no_record": "no record yet", "wrong_value": "a different value",
                 "timeout": "DNS did not answer in time", "lookup_failed": "the lookup failed"}


def last_problem(domain: Domain) -> str | None:
    """The sentence for the domain's last check's problem (None: none, or never checked)."""
    code = domain.last_check_code
    return _problem(code, domain) if code in OUTCOME_WORDS else None


def _problem(code: str, domain: Domain) -> str:
    name = record_name(domain.hostname)
    return {
        "no_record": f"There is no TXT record named {name} yet. Add it at your DNS provider "
                     "with the value shown; a new record can take a few minutes (sometimes "
                     "hours) to be seen.",
        "wrong_value": f"The TXT record {name} holds a different value. Change it to "
                       f"{domain.verification_token} (only that, without spaces).",
        "timeout": f"The DNS servers of {domain.hostname} did not answer in time. Try again "
                   "in a few minutes.",
        "lookup_failed": f"Looking up {name} failed: the DNS servers answered with an error. "
                         "Try again in a few minutes; if it keeps failing, check the "
                         "domain's DNS settings at your provider.",
    }[code]


def check(domain: Domain, lookup_txt: Callable[[str], Iterable[str]] | None = None,
          lifetime: float = LOOKUP_SECONDS) -> Outcome:
    """Whether one of the accepted TXT records holds this domain's token, and if not, why.

    The reason given is the neutral record's: the legacy name is tried too but never named.
    """
    lookup_txt = lookup_txt or dns_lookup(lifetime)
    reasons: list[str] = []
    for name in accepted_record_names(domain.hostname):
        try:
            values = [v.strip().strip('"').strip() for v in lookup_txt(name) or ()]
        except _NotProven as exc:
            reasons.append(exc.code)
            if exc.code == "timeout":
                break  # the same servers answer for the other name: do not wait twice
            continue
        except Exception:  # a lookup that failed in some other way proves nothing
            reasons.append("lookup_failed")
            continue
        if domain.verification_token in values:
            return Outcome(True)
        reasons.append("wrong_value" if values else "no_record")
    code = reasons[0] if reasons else "no_record"
    return Outcome(False, code, _problem(code, domain))


def proves_control(domain: Domain, lookup_txt: Callable[[str], Iterable[str]]) -> bool:
    """True when one of the accepted TXT records holds the domain's token.

    ``lookup_txt(name)`` returns that name's TXT strings (a DNS resolver, or a dict's get in
    tests); a lookup error counts as no record."""
    return check(domain, lookup_txt).verified
