"""The web console in a real browser: Debian's headless Chromium driven by Playwright against
`opscopilot serve --scenario` on a free port.

The demo server's model is a paced OpenAI-compatible stand-in (tests/standins/paced_openai.py: no
real model server can run here), so the explanation's tokens really stream. Screenshots at
1280x800 and at phone width are kept in var/artifacts/console/.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console_helpers import (
    ALERT_FILE,
    CHROMIUM,
    DEMO,
    DEMO_QUESTION,
    DESKTOP,
    DISK,
    PHONE,
    Served,
    launch,
    screenshot,
    serve,
    signed_in,
)
from tests.live import unavailable
from tests.standins.paced_openai import start_paced_openai

pytestmark = [pytest.mark.live, pytest.mark.slow]  # about a minute: a server, a browser, a paced model

EXPLANATION = (
    "Session 57 on sql-prod-01 has kept a transaction open for 24 minutes and holds the locks that three "
    "checkout sessions wait for [E1]. Waits are dominated by locks [E4]. Killing session 57 after approval "
    "rolls its transaction back and releases the locks [E1]."
)
USERS = {"alice": "approver", "bob": "approver", "vic": "viewer"}  # alice asks, bob decides
TIMEOUT = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing: scripts/services installs Debian's chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("console-demo")
    with start_paced_openai(EXPLANATION, "standin", "not-needed", pace_s=0.06) as model:
        env = {"OPSCOPILOT_MODEL_SPEC": "openai:standin", "OPSCOPILOT_MODEL__OPENAI_BASE_URL": model.url}
        with serve(tmp, DEMO, USERS, env) as served:
            yield served


def ask(page: Any, question: str = DEMO_QUESTION) -> None:
    page.wait_for_selector("[data-testid=chat-input]:not([disabled])", timeout=TIMEOUT)
    page.fill("[data-testid=chat-input]", question)
    page.keyboard.press("Enter")  # Enter sends


def last_answer(page: Any) -> Any:
    return page.locator("[data-testid=chat-answer]").last


STREAMING_TEXT = """() => {
  const answers = document.querySelectorAll('[data-testid=chat-answer]');
  const a = answers[answers.length - 1];
  const text = a && a.querySelector('.explanation') && a.querySelector('.explanation').textContent.trim();
  return a && a.dataset.state === 'streaming' && text ? text : null;
}"""


def test_the_demo_answer_streams_in_and_draws_the_blocking_tree(browser: Any, demo: Served) -> None:
    from playwright.sync_api import ConsoleMessage, expect

    context = signed_in(browser, demo, "alice")
    page = context.new_page()
    errors: list[str] = []

    def console_error(m: ConsoleMessage) -> None:
        if m.type == "error":
            errors.append(m.text)

    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", console_error)
    page.goto(demo.base + "/")
    ask(page)

    partial = page.wait_for_function(STREAMING_TEXT, timeout=TIMEOUT).json_value()
    progress = page.locator("[data-testid=progress]").last
    expect(progress.locator("li[data-specialist=database]")).to_be_visible()
    expect(last_answer(page)).to_have_attribute("data-state", "done", timeout=TIMEOUT)
    final = last_answer(page).text_content() or ""
    assert partial and len(partial) < len(EXPLANATION), "text arrived while the run went on"
    assert "head blocker session 57" in final
    assert "Session 57" in final  # the model's explanation, kept by the guard

    tree = page.locator("[data-testid=blocking-tree]").first
    expect(tree).to_have_attribute("data-head", "57")
    expect(tree.locator("li[data-session='88'] li[data-session='91']")).to_contain_text("LCK_M_S")
    expect(tree.locator("li[data-session='102']")).to_contain_text("LCK_M_U")
    expect(page.locator("[data-testid=evidence-chart][data-kind=wait_profile]").first).to_contain_text(
        "locks"
    )
    assert page.locator("[data-testid=finding]").count() >= 4
    expect(page.locator("[data-testid=citation]").first).to_have_text("INC-2031")
    expect(page.locator("[data-testid=approval-card]").last).to_have_attribute("data-status", "pending")
    assert page.locator("time[title^='UTC: ']").count() > 0  # local time shown, UTC on hover

    # a finding expands to its evidence rows; Esc closes it
    first = page.locator("[data-testid=finding]").first
    first.locator("summary").click()
    expect(first.locator("table.rows")).to_contain_text("Nightly Reconciler")
    page.keyboard.press("Escape")
    expect(first.locator("details.detail")).not_to_have_attribute("open", "")

    screenshot(page, "demo-answer-1280x800")
    screenshot(page, "demo-answer-1280-full", full_page=True)
    phone = signed_in(browser, demo, "alice", PHONE).new_page()
    phone.goto(page.url)  # the thread reopens from the API
    expect(phone.locator("[data-testid=blocking-tree]").first).to_be_visible(timeout=TIMEOUT)
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "no sideways scrolling"
    screenshot(phone, "demo-answer-phone-390")
    screenshot(phone, "demo-answer-phone-390-full", full_page=True)
    assert not errors, errors


def test_a_second_user_approves_while_the_requester_is_refused(browser: Any, demo: Served) -> None:
    from playwright.sync_api import expect

    alice = signed_in(browser, demo, "alice").new_page()
    alice.goto(demo.base + "/#/chat")
    ask(alice)
    card = alice.locator("[data-testid=approval-card]").last
    expect(card).to_have_attribute("data-status", "pending", timeout=TIMEOUT)
    approval_id = card.get_attribute("data-approval")
    # the UI says why the requester cannot approve, and the API refuses her as well
    expect(card.locator("[data-testid=approval-blocked]")).to_contain_text("You requested this investigation")
    expect(card.locator("[data-testid=approval-approve]")).to_be_disabled()
    refused = alice.request.post(
        f"{demo.base}/api/v1/approvals/{approval_id}/decision", data={"decision": "approve"}
    )
    assert refused.status == 403 and "may not approve" in refused.json()["detail"]

    # a viewer may look but neither ask nor decide
    viewer = signed_in(browser, demo, "vic").new_page()
    viewer.goto(demo.base + "/#/chat")
    expect(viewer.locator("[data-testid=chat-input]")).to_be_disabled()
    expect(viewer.locator(".why-not")).to_contain_text("operator role")

    # bob signs in with his token through the sign-in form and approves with a comment
    bob = browser.new_context(viewport=DESKTOP).new_page()
    bob.goto(demo.base + "/#/approvals")
    bob.fill("[data-testid=signin-token]", demo.tokens["bob"])
    bob.click("[data-testid=signin-submit]")
    expect(bob.locator("[data-testid=me]")).to_contain_text("bob")
    bob_card = bob.locator(f"[data-testid=approval-card][data-approval='{approval_id}']")
    expect(bob_card.locator("[data-testid=approval-approve]")).to_be_enabled(timeout=TIMEOUT)
    bob_card.locator("[data-testid=approval-comment]").fill("head blocker is an idle reconciler: kill it")
    screenshot(bob, "approvals-before-1280x800")
    bob_card.locator("[data-testid=approval-approve]").click()
    expect(bob_card.locator("[data-testid=approval-status]")).to_have_text("approved", timeout=TIMEOUT)
    expect(bob_card).to_contain_text("Approved by bob")
    expect(bob_card.locator("[data-testid=approval-outcome]")).to_be_visible()
    screenshot(bob, "approvals-after-1280x800")

    # the requester's open page changes by itself
    expect(card.locator("[data-testid=approval-status]")).to_have_text("approved", timeout=TIMEOUT)
    expect(card).to_contain_text("head blocker is an idle reconciler")
    stored = httpx.get(f"{demo.base}/api/v1/approvals/{approval_id}", headers=demo.auth("bob")).json()
    assert stored["status"] == "approved" and stored["decided_by"] == "bob"


def test_a_posted_alert_appears_without_a_reload(browser: Any, demo: Served) -> None:
    from playwright.sync_api import expect

    page = signed_in(browser, demo, "alice").new_page()
    page.goto(demo.base + "/#/alerts")
    page.wait_for_selector("h2:has-text('Alerts')")
    page.evaluate("window.__sameDocument = 42")
    before = page.locator("[data-testid=alerts-row]").count()
    body = json.loads(ALERT_FILE.read_text())
    body["alerts"][0]["fingerprint"] = "console-browser-test"
    posted = httpx.post(f"{demo.base}/api/v1/alerts/alertmanager", json=body, headers=demo.auth("alice"))
    assert posted.status_code == 202, posted.text
    inv_id = posted.json()["alerts"][0]["investigation_id"]

    expect(page.locator("[data-testid=alerts-row]")).to_have_count(before + 1, timeout=TIMEOUT)
    row = page.locator("[data-testid=alerts-row]").first
    expect(row).to_contain_text("alertmanager")
    expect(row).to_contain_text("firing")
    link = row.locator(f"a[href='#/investigations/{inv_id}']")
    expect(link).to_contain_text("Most likely cause", timeout=TIMEOUT)  # the headline, once investigated
    assert page.evaluate("window.__sameDocument") == 42, "the page was not reloaded"
    screenshot(page, "alerts-1280x800")

    link.click()  # the investigation's page
    expect(page.locator("[data-testid=blocking-tree]").first).to_be_visible(timeout=TIMEOUT)
    screenshot(page, "investigation-1280x800")
    phone = signed_in(browser, demo, "alice", PHONE).new_page()
    phone.goto(demo.base + "/#/alerts")
    expect(phone.locator("[data-testid=alerts-row]").first).to_be_visible(timeout=TIMEOUT)
    screenshot(phone, "alerts-phone-390")


def test_the_answer_survives_a_dropped_stream(browser: Any, demo: Served) -> None:
    """The chat stream is cut right after the investigation started; the console reconnects to it
    and shows the whole stored result."""
    from playwright.sync_api import expect

    page = signed_in(browser, demo, "alice").new_page()

    def cut(route: Any) -> None:
        response = route.fetch()
        body = response.body()
        end = body.index(b"opscopilot.investigation")
        end = body.index(b"\n\n", end) + 2
        route.fulfill(status=200, headers=dict(response.headers), body=body[:end])

    page.route(re.compile(r".*/api/v1/chat$"), cut)
    page.goto(demo.base + "/#/chat")
    ask(page)
    expect(last_answer(page)).to_have_attribute("data-state", "done", timeout=TIMEOUT)
    expect(page.locator(".note").last).to_contain_text("Reconnected")
    expect(last_answer(page)).to_contain_text("head blocker session 57")
    expect(page.locator("[data-testid=blocking-tree]").last).to_be_visible()
    expect(page.locator("[data-testid=approval-card]").last).to_be_visible()


RED_PIXELS_RIGHT_QUARTER = """(fig) => {
  const c = fig.querySelector('canvas');
  const x0 = Math.floor(c.width * 0.75), w = c.width - x0;
  const d = c.getContext('2d').getImageData(x0, 0, w, c.height).data;
  let red = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] > 0 && d[i] > 150 && d[i + 1] < 120 && d[i + 2] < 120) red++;
  }
  return red;
}"""


def test_a_disk_forecast_draws_the_line_to_the_threshold(browser: Any, tmp_path: Path) -> None:
    """Without authentication (--no-auth): the page says so, and the forecast is drawn past the
    last point (the right quarter of the chart holds only the forecast and the threshold)."""
    from playwright.sync_api import expect

    with serve(tmp_path, DISK, no_auth=True) as served:
        for name, viewport in (("1280x800", DESKTOP), ("phone-390", PHONE)):
            page = browser.new_context(viewport=viewport).new_page()
            page.goto(served.base + "/")
            expect(page.locator(".banner")).to_contain_text("without authentication")
            ask(page, "How long until /var/lib/postgresql on pg-archive-01 is full at the current rate?")
            chart = page.locator("[data-testid=evidence-chart][data-forecast=true]").first
            expect(chart).to_be_visible(timeout=TIMEOUT)
            expect(chart).to_contain_text("forecast reaches 100%")
            expect(chart.locator("canvas")).to_have_count(1)
            assert chart.evaluate(RED_PIXELS_RIGHT_QUARTER) > 50, "the dashed forecast line is drawn"
            chart.scroll_into_view_if_needed()
            screenshot(page, f"disk-forecast-{name}")
