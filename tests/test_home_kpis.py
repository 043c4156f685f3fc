"""Home pages: the numbers (app.web.kpis) for each role, per tenant, and the chart geometry
(app.web.charts) that must read well with one day or ninety days of data."""

from __future__ import annotations

import itertools
import re
import uuid
from datetime import UTC, date, datetime, timedelta

from tests.agents_support import make_agent
from tests.conftest import login

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


# -- charts -----------------------------------------------------------------------------------

class Row:
    def __init__(self, day: date, n: int):
        self.day, self.n = day, n


def test_one_day_of_data_is_one_narrow_bar_among_empty_days():
    from app.web import charts

    chart = charts.daily_bars([Row(NOW.date(), 7)], 30, value=lambda r: r.n, label="Runs",
                              until=NOW)
    assert len(chart.bars) == 30 and chart.total == 7
    drawn = [b for b in chart.bars if b.height > 0]
    assert len(drawn) == 1 and drawn[0].day == NOW.date()
    assert drawn[0].width <= charts.MAX_BAR
    assert drawn[0].x + drawn[0].width <= charts.WIDTH - charts.RIGHT  # the last slot
    labels = [t.label for t in chart.x_ticks]
    assert labels[0] == (NOW.date() - timedelta(days=29)).strftime("%d %b")
    assert labels[-1] == "20 Nov"
    assert chart.y_ticks[-1].label == "10"  # 7 rounds up to a readable 10


def test_a_one_day_window_does_not_fill_the_width():
    from app.web import charts

    chart = charts.daily_bars([Row(NOW.date(), 3)], 1, value=lambda r: r.n, label="Runs",
                              until=NOW)
    [bar] = chart.bars
    plot_width = charts.WIDTH - charts.LEFT - charts.RIGHT
    assert bar.width <= charts.MAX_BAR < plot_width / 4
    middle = charts.LEFT + plot_width / 2
    assert abs((bar.x + bar.width / 2) - middle) < 1  # centred in its slot


def test_ninety_days_fit_with_few_date_labels():
    from app.web import charts

    rows = [Row(NOW.date() - timedelta(days=i), i + 1) for i in range(90)]
    chart = charts.daily_bars(rows, 90, value=lambda r: r.n, label="Runs", until=NOW)
    assert len(chart.bars) == 90
    assert all(b.x >= charts.LEFT and b.x + b.width <= charts.WIDTH - charts.RIGHT
               for b in chart.bars)
    assert all(b.width >= 2 for b in chart.bars)
    assert 2 <= len(chart.x_ticks) <= charts.MAX_X_LABELS + 1
    assert max(b.value for b in chart.bars) == 90 and chart.y_ticks[-1].label == "100"
    xs = [t.at for t in chart.x_ticks]
    assert xs == sorted(xs) and all(b - a > 40 for a, b in itertools.pairwise(xs))


def test_nice_ceiling():
    from app.web.charts import nice_ceiling

    assert [nice_ceiling(v) for v in (0, 1, 3, 7, 10, 11, 26, 140, 999)] == [
        1, 1, 5, 10, 10, 20, 50, 200, 1000]


# -- data -------------------------------------------------------------------------------------

def _executions(app, site, agent_id, user_id, moments, tokens=(10, 5), model="gpt-4o-mini"):
    from app.agents.models import AgentVersion, Execution
    from app.extensions import db
    from tenants.context import activate

    with app.app_context(), activate(site.info):
        version = db.session.query(AgentVersion).filter_by(agent_id=agent_id).first()
        for moment in moments:
            db.session.add(Execution(
                agent_id=agent_id, version_id=version.id, version_number=version.number,
                model=model, caller_user_id=user_id, input="hi", status="succeeded",
                prompt_tokens=tokens[0], completion_tokens=tokens[1], cost_micros=123456,
                created_at=moment, updated_at=moment))
        db.session.commit()


def _numbers(html: str, testid: str) -> str:
    match = re.search(rf'data-testid="{testid}".*?</div>', html, re.S)
    assert match, testid
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(0)))


def test_reseller_home_counts_its_own_tenant_only(app, acme, globex, make_user, at):
    at(NOW)
    owner = make_user(acme, "owner@acme.example", role="RESELLER")
    ann = make_user(acme, "ann@example.com")
    g_owner = make_user(globex, "owner@globex.example", role="RESELLER")
    gus = make_user(globex, "gus@example.com")
    helper = make_agent(app, acme, owner, role="RESELLER", slug="helper")
    g_helper = make_agent(app, globex, g_owner, role="RESELLER", slug="helper")
    _executions(app, acme, helper, ann, [NOW - timedelta(hours=h) for h in range(3)])
    _executions(app, acme, helper, ann, [NOW - timedelta(days=30)])  # last month
    _executions(app, globex, g_helper, gus, [NOW - timedelta(hours=h) for h in range(8)])

    login(acme, "owner@acme.example")
    html = acme.client.get("/").get_data(as_text=True)
    assert "Executions this month 3 1 last month · +200%" in _numbers(html, "kpi-executions")
    assert "45" in _numbers(html, "kpi-tokens")
    assert "Active customers 1" in _numbers(html, "kpi-customers")
    assert "Helper" in html and 'data-testid="setup-checklist"' in html
    assert "Build your first agent" in html and 'data-done="yes"' in html
    assert 'data-testid="chart-executions"' in html and "<title>" in html
    assert "gus@example.com" not in html

    login(globex, "owner@globex.example")
    g_html = globex.client.get("/").get_data(as_text=True)
    assert "Executions this month 8 0 last month · new" in _numbers(g_html, "kpi-executions")


def test_customer_home_shows_usage_and_never_the_provider(app, acme, make_user, api_caller,
                                                         at):
    at(NOW)
    owner = make_user(acme, "owner@acme.example", role="RESELLER")
    ann = api_caller(acme, role="USER", email="ann@example.com")
    bob = make_user(acme, "bob@example.com")
    helper = make_agent(app, acme, owner, role="RESELLER", slug="helper")
    _executions(app, acme, helper, ann.user_id, [NOW - timedelta(hours=1)],
                model="secret-provider-model")
    _executions(app, acme, helper, bob, [NOW - timedelta(hours=2)] * 4,
                model="secret-provider-model")
    from app.agents.quotas import reserve
    from app.extensions import db
    from tenants.context import activate

    with app.app_context(), activate(acme.info):
        reserve(ann.user_id)
        db.session.commit()
    login(acme, "ann@example.com")
    html = acme.client.get("/").get_data(as_text=True)
    assert "1 of 100 executions used" in html and "2026-12-01" in html
    assert 'role="meter"' in html and 'aria-valuenow="1"' in html
    recent = re.search(r'data-testid="recent-executions".*?</table>', html, re.S).group(0)
    assert recent.count("<tr>") == 2  # header + ann's one execution, not bob's four
    assert "test key" in html
    assert "secret-provider-model" not in html and "0.12" not in html and "USD" not in html
    for path in ("/agents/executions", re.search(r'href="(/agents/executions/[^"]+)"',
                                                 recent).group(1)):
        page = acme.client.get(path).get_data(as_text=True)
        assert "secret-provider-model" not in page and "0.123456" not in page
    usage = acme.client.get("/agents/usage").get_data(as_text=True)
    assert "secret-provider-model" not in usage and "cost" not in usage.lower()
    assert 'data-testid="usage-executions"' in usage


def test_platform_home_totals_every_reseller(app, platform, acme, globex, make_user, at):
    at(NOW)
    make_user(platform, "admin@example.com", role="ADMIN")
    a_owner = make_user(acme, "owner@acme.example", role="RESELLER")
    ann = make_user(acme, "ann@example.com")
    make_user(globex, "gus@example.com")
    helper = make_agent(app, acme, a_owner, role="RESELLER", slug="helper")
    _executions(app, acme, helper, ann, [NOW - timedelta(hours=1)] * 2)
    from app.billing.models import Subscription
    from app.billing.plans import create_plan
    from app.extensions import db
    from tenants.context import activate

    with app.app_context(), activate(platform.info):
        create_plan("growth", "Growth", stripe_price_id="price_growth", amount_minor=4900)
        db.session.commit()
    with app.app_context(), activate(acme.info):
        db.session.add(Subscription(stripe_subscription_id="sub_1", stripe_customer_id="cus_1",
                                    stripe_price_id="price_growth", status="active"))
        db.session.commit()
    with app.app_context(), activate(globex.info):
        db.session.add(Subscription(stripe_subscription_id="sub_2", stripe_customer_id="cus_2",
                                    stripe_price_id="price_growth", status="past_due"))
        db.session.commit()
    login(platform, "admin@example.com")
    html = platform.client.get("/").get_data(as_text=True)
    assert "Resellers 2" in _numbers(html, "kpi-resellers")
    assert "Active customers 2" in _numbers(html, "kpi-customers")
    assert "Executions this month 2" in _numbers(html, "kpi-executions")
    mrr = _numbers(html, "kpi-mrr")
    assert "98" in mrr  # both entitled (past_due still is): 2 x 49.00
    assert "1 failing payment" in _numbers(html, "kpi-failing")
    assert str(uuid.UUID(int=0)) not in html
