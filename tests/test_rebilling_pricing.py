"""Price computation: every price kind, currencies with and without minor units, rounding,
and which price applies; price books kept apart per tenant."""

from __future__ import annotations

import uuid
from fractions import Fraction

import pytest

from app.billing import price_book, pricing
from app.billing.pricing import Book, Rule, Usage, charge_micro, round_money, to_minor
from app.errors import ApiError
from app.extensions import db
from tenants.context import activate

USAGE = Usage(prompt_tokens=1_234, completion_tokens=567, cost_micros_usd=525)


def test_round_money_rounds_halves_away_from_zero_and_is_symmetric():
    assert round_money(Fraction(5, 2)) == 3
    assert round_money(Fraction(-5, 2)) == -3
    assert round_money(Fraction(249_999, 100_000)) == 2
    assert round_money(Fraction(7, 3)) == 2
    assert to_minor(1_500_000) == 2 and to_minor(-1_500_000) == -2
    assert to_minor(1_499_999) == 1 and to_minor(0) == 0


@pytest.mark.parametrize("currency", ["usd", "jpy"])
def test_token_price_is_exact_in_micro_minor_units(currency):
    rule = Rule("tokens", input_per_million_minor=150, output_per_million_minor=600)
    # 1234 tokens at 150 minor per million = 0.1851 minor = 185100 micro-minor, exactly.
    assert charge_micro(rule, USAGE, currency, 1_000_000) == 1_234 * 150 + 567 * 600
    assert to_minor(charge_micro(rule, USAGE, currency, 1_000_000)) == 1  # 0.5253 → 1


def test_execution_price_is_whole_minor_units():
    assert charge_micro(Rule("execution", per_execution_minor=25), USAGE, "eur", 1) \
        == 25_000_000


def test_markup_on_provider_cost_in_usd_eur_and_zero_decimal_jpy():
    markup = Rule("markup", markup_bp=15_000)  # +50 %
    # 525 micro-dollars = 52500 micro-cents; x1.5 = 78750.
    assert charge_micro(markup, USAGE, "usd", 1_000_000) == 78_750
    # EUR at 0.92 per dollar: 52500 x 0.92 x 1.5 = 72450 micro-cents (euro cents).
    assert charge_micro(markup, USAGE, "eur", 920_000) == 72_450
    # JPY has no minor unit: 525 micro-dollars x 150 yen x 1.5 = 118125 micro-yen.
    assert charge_micro(markup, USAGE, "jpy", 150_000_000) == 118_125
    # A fraction of a micro-unit is rounded once, half away from zero.
    assert charge_micro(Rule("markup", markup_bp=10_001), Usage(0, 0, 1), "usd",
                        1_000_000) == 100  # 100.01 → 100
    assert charge_micro(Rule("markup", markup_bp=10_050), Usage(0, 0, 1), "usd",
                        1_000_000) == 101  # 100.5 → 101


def test_the_most_specific_price_applies():
    agent = uuid.uuid4()
    book = Book("usd", 1_000_000, {
        "default": Rule("execution", per_execution_minor=1),
        "model:gpt-4o": Rule("execution", per_execution_minor=2),
        f"agent:{agent}": Rule("execution", per_execution_minor=3)})
    assert book.price(agent, "gpt-4o", USAGE) == 3 * pricing.MICRO
    assert book.price(uuid.uuid4(), "gpt-4o", USAGE) == 2 * pricing.MICRO
    assert book.price(uuid.uuid4(), "other", USAGE) == 1 * pricing.MICRO
    # No book: the provider's cost passes through at cost.
    assert Book("usd", 1_000_000, {}).price(agent, "gpt-4o", USAGE) == 52_500


def test_price_books_are_per_tenant_and_validated(ctx, acme, globex, platform):
    with activate(acme.info):
        price_book.update_book(currency="eur", usd_rate_ppm=920_000)
        price_book.set_price(kind="tokens", model="gpt-4o-mini", input_per_million_minor=20,
                             output_per_million_minor=80)
        db.session.commit()
    with activate(globex.info):
        price_book.update_book(currency="jpy", usd_rate_ppm=150_000_000)
        price_book.set_price(kind="markup", markup_bp=20_000)
        db.session.commit()
        assert [p.selector for p in price_book.list_prices()] == ["default"]
        assert pricing.load_book().currency == "jpy"
    with activate(acme.info):
        book = pricing.load_book()
        assert book.currency == "eur"
        assert book.rule_for(None, "gpt-4o-mini").input_per_million_minor == 20
        assert book.rule_for(None, "other") == pricing.AT_COST  # globex's default is not ours
        for bad in ({"kind": "tokens"}, {"kind": "markup", "per_execution_minor": 5},
                    {"kind": "execution", "per_execution_minor": -1},
                    {"kind": "free", "per_execution_minor": 1}):
            with pytest.raises(ApiError) as err:
                price_book.set_price(**bad)
            assert err.value.code == "invalid_price"
        with pytest.raises(ApiError) as err:  # wholesale prices for one reseller: platform only
            price_book.set_price(kind="markup", markup_bp=1, reseller_id=globex.info.id)
        assert err.value.code == "invalid_price"
    with activate(platform.info):
        price_book.set_price(kind="markup", markup_bp=12_000)
        price_book.set_price(kind="markup", markup_bp=11_000, reseller_id=acme.info.id)
        db.session.commit()
    with activate(acme.info):
        assert pricing.wholesale_book(acme.info.id).rule_for(None, "x").markup_bp == 11_000
    with activate(globex.info):
        assert pricing.wholesale_book(globex.info.id).rule_for(None, "x").markup_bp == 12_000


def test_the_credential_is_a_generic_kind_and_id_for_every_channel():
    from types import SimpleNamespace

    from app.billing.ledger import credential_of, is_charged

    key, license_id = uuid.uuid4(), uuid.uuid4()

    def run(source, api_key_id=None, lic=None):
        return SimpleNamespace(source=source, api_key_id=api_key_id, license_id=lic)

    assert credential_of(run("api", key)) == ("api_key", key)
    assert credential_of(run("openai", key)) == ("api_key", key)
    assert credential_of(run("widget", key)) == ("widget_key", key)
    assert credential_of(run("license", key, license_id)) == ("license", license_id)
    assert credential_of(run("sandbox")) == ("session", None)
    assert is_charged("succeeded", True) and is_charged("cancelled", True)
    assert is_charged("timed_out", True) and not is_charged("cancelled", False)
    assert not is_charged("failed", True) and not is_charged("failed", False)
