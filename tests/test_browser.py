"""The type-ahead page in headless Chromium: type, see suggestions, pick one with the keyboard.

Uses Debian's Chromium (/usr/bin/chromium, installed by .ci/install-browser) driven by
Playwright's Python package through ``executable_path``; Playwright's own browser downloads
are never used. Skipped, saying so, only where Chromium (or Playwright) is not installed.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(),
    reason="Chromium is not installed (run .ci/install-browser): browser test skipped",
)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python package) is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the service needs the 'serve' extra (fastapi, uvicorn)")

from coder import Coder  # noqa: E402
from coder.service.app import create_app  # noqa: E402

expect = sync_api.expect
# As the machine notes say: without the background-networking flags Chromium keeps trying to
# reach Google's hosts, which a closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def live_server(small_coder, small_model_dir):
    """uvicorn serving the small model in a thread, on a free loopback port; and the coder
    that tests compute expected answers with (not the server's: a Coder is not thread-safe)."""
    served = Coder(small_coder.model, threshold=small_coder.threshold)  # own cache: another thread
    app = create_app(served, model_dir=small_model_dir)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/", small_coder
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    base, _ = live_server
    context = browser.new_context(base_url=base)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    page.errors, page.requests = errors, requests  # type: ignore[attr-defined]
    page.goto(base)
    yield page
    context.close()
    assert not errors, f"errors in the page: {errors}"
    assert all(url.startswith(base) for url in requests), f"the page fetched something remote: {requests}"


def suggestions(page):
    """The options of the suggestion listbox (not the <option>s of the scheme <select>)."""
    return page.get_by_role("listbox", name="Suggested codes").get_by_role("option")


def suggest_requests(page) -> list[str]:
    return [u for u in page.requests if "/suggest?" in u]


def test_type_see_suggestions_and_pick_with_the_keyboard(page, live_server):
    _, coder = live_server
    box = page.get_by_role("combobox", name="Job title")
    expect(box).to_be_focused()  # autofocus: no mouse needed to start
    box.press_sequentially("store mgr", delay=25)
    options = suggestions(page)
    expect(options.first).to_be_visible()
    expect(box).to_have_attribute("aria-expanded", "true")
    expected = [c.code for c in coder.code("store mgr").candidates]
    assert [o.get_attribute("data-code") for o in options.all()] == expected
    # Each suggestion shows code, title, a confidence bar and the matched index entry.
    first = options.first
    expect(first.locator(".code")).to_have_text(expected[0])
    expect(first.locator(".otitle")).to_have_text(coder.scheme.title(expected[0]))
    expect(first.locator(".bar .fill")).to_have_count(1)
    expect(first.locator(".meta")).to_contain_text("matched")
    # Debounced: typing nine characters quickly sends far fewer requests than keystrokes.
    assert 1 <= len(suggest_requests(page)) <= 3, suggest_requests(page)

    box.press("ArrowDown")
    expect(box).to_have_attribute("aria-activedescendant", "option-0")
    box.press("ArrowDown")
    expect(box).to_have_attribute("aria-activedescendant", "option-1")
    expect(options.nth(1)).to_have_attribute("aria-selected", "true")
    expect(options.nth(0)).to_have_attribute("aria-selected", "false")
    box.press("Enter")

    chosen = page.get_by_role("textbox", name="Chosen code")
    expect(chosen).to_have_value(expected[1])
    expect(chosen).to_have_attribute("readonly", "")
    expect(box).to_have_attribute("aria-expanded", "false")
    expect(page.get_by_role("listbox")).to_be_hidden()
    expect(page.locator("#chosen-path li")).to_have_count(4)  # major group down to the unit group
    expect(page.locator("#chosen-path li").last).to_contain_text(expected[1])


def test_copy_button_copies_the_chosen_code(page, browser, live_server):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    box = page.get_by_role("combobox", name="Job title")
    copy = page.get_by_role("button", name="Copy")
    expect(copy).to_be_disabled()
    box.press_sequentially("nurse", delay=20)
    expect(suggestions(page).first).to_be_visible()
    box.press("ArrowDown")
    box.press("Enter")
    code = page.get_by_role("textbox", name="Chosen code").input_value()
    assert re.fullmatch(r"\d{4}", code)
    copy.focus()  # keyboard only: focus the button and press Enter
    page.keyboard.press("Enter")
    expect(page.locator("#copy-status")).to_have_text(f"Copied {code}")
    assert page.evaluate("navigator.clipboard.readText()") == code


def test_escape_closes_and_arrow_up_wraps(page):
    box = page.get_by_role("combobox", name="Job title")
    box.press_sequentially("teacher", delay=20)
    options = suggestions(page)
    expect(options.first).to_be_visible()
    count = options.count()
    box.press("Escape")
    expect(page.get_by_role("listbox")).to_be_hidden()
    expect(box).to_have_attribute("aria-expanded", "false")
    box.press("ArrowUp")  # reopens on the last option
    expect(box).to_have_attribute("aria-activedescendant", f"option-{count - 1}")
    box.press("ArrowDown")  # and wraps round to the first
    expect(box).to_have_attribute("aria-activedescendant", "option-0")


def test_stale_responses_are_ignored(page, live_server):
    _, coder = live_server
    # Hold back the answer for "nurse" so that it arrives after the one for "teacher".
    page.evaluate("""() => {
        const real = window.fetch;
        window.fetch = (url, opts) => String(url).includes("q=nurse")
            ? new Promise((resolve, reject) => setTimeout(() => real(url, opts).then(resolve, reject), 800))
            : real(url, opts);
    }""")
    box = page.get_by_role("combobox", name="Job title")
    box.press_sequentially("nurse", delay=10)
    page.wait_for_timeout(300)  # the debounced request for "nurse" is now in flight
    box.fill("")
    box.press_sequentially("teacher", delay=10)
    expected = coder.code("teacher").candidates[0].code
    expect(suggestions(page).first).to_have_attribute("data-code", expected)
    page.wait_for_timeout(1200)  # well after the held-back answer would have landed
    expect(suggestions(page).first).to_have_attribute("data-code", expected)
    expect(box).to_have_value("teacher")


def test_uncodable_and_industry(page, live_server):
    _, coder = live_server
    box = page.get_by_role("combobox", name="Job title")
    box.press_sequentially("dont know", delay=10)
    expect(page.locator("#status .badge")).to_have_text("uncodable")
    expect(suggestions(page)).to_have_count(0)
    box.fill("store mgr")
    page.get_by_label("Industry or employer").fill("supermarket")
    box.focus()
    expected = coder.code("store mgr", "supermarket").candidates[0].code
    expect(suggestions(page).first).to_have_attribute("data-code", expected)
    assert any("industry=supermarket" in u for u in suggest_requests(page))


def expect_codes(page, expected: list[str]) -> None:
    """Wait until the suggestions are exactly ``expected`` (earlier answers may show first)."""
    options = suggestions(page)
    expect(options).to_have_count(len(expected))
    for i, code in enumerate(expected):
        expect(options.nth(i)).to_have_attribute("data-code", code)


def test_description_is_sent_with_the_title(page, live_server):
    _, coder = live_server
    box = page.get_by_role("combobox", name="Job title")
    box.press_sequentially("factory operative", delay=10)
    expect(suggestions(page).first).to_be_visible()
    with page.expect_response(lambda r: "/suggest?" in r.url and "description=forklift+driver" in r.url):
        page.get_by_label("What do you mainly do?").fill("forklift driver")
    box.focus()
    expect_codes(page, [c.code for c in coder.code("factory operative", None, "forklift driver").candidates])
    assert "industry=" not in suggest_requests(page)[-1]


def choose_first(page, box):
    expect(suggestions(page).first).to_be_visible()
    box.press("ArrowDown")
    box.press("Enter")
    expect(page.get_by_role("textbox", name="Chosen code")).not_to_have_value("")


def test_next_title_starts_without_the_previous_answers_context(page, live_server):
    """Issue 14 item 8: the industry (and description) of one answer must not be used for the next."""
    _, coder = live_server
    box = page.get_by_role("combobox", name="Job title")
    industry = page.get_by_label("Industry or employer")
    description = page.get_by_label("What do you mainly do?")
    chosen = page.get_by_role("textbox", name="Chosen code")
    box.press_sequentially("store mgr", delay=10)
    industry.fill("supermarket")
    description.fill("runs the shop floor")
    box.focus()
    expect(suggestions(page).first).to_have_attribute(
        "data-code", coder.code("store mgr", "supermarket", "runs the shop floor").candidates[0].code)
    choose_first(page, box)
    # The answer just coded stays on screen, its title selected, until the next one starts.
    expect(industry).to_have_value("supermarket")
    assert page.evaluate("[document.activeElement.selectionStart, document.activeElement.selectionEnd]") == [0, 9]

    before = len(suggest_requests(page))
    box.press_sequentially("nurse", delay=10)  # types over the selected title: the next answer
    expect(box).to_have_value("nurse")
    expect(industry).to_have_value("")
    expect(description).to_have_value("")
    expect(chosen).to_have_value("")
    expect(page.get_by_role("button", name="Copy")).to_be_disabled()
    expect_codes(page, [c.code for c in coder.code("nurse").candidates])
    sent = suggest_requests(page)[before:]
    assert sent and not any("industry=" in u or "description=" in u for u in sent), sent


def test_clearing_the_title_starts_the_next_answer(page):
    box = page.get_by_role("combobox", name="Job title")
    industry = page.get_by_label("Industry or employer")
    box.press_sequentially("teacher", delay=10)
    industry.fill("primary school")
    box.focus()
    expect(suggestions(page).first).to_be_visible()
    box.press("Escape")  # closes the list
    expect(industry).to_have_value("primary school")
    box.press("Escape")  # clears the title: no code was chosen, but this answer is over
    expect(box).to_have_value("")
    expect(industry).to_have_value("")
    # Industry typed before the title belongs to the answer being typed: kept.
    industry.fill("hospital")
    box.press_sequentially("porter", delay=10)
    expect(suggestions(page).first).to_be_visible()
    expect(industry).to_have_value("hospital")
    assert "industry=hospital" in suggest_requests(page)[-1]


def test_editing_the_title_keeps_its_context(page):
    box = page.get_by_role("combobox", name="Job title")
    industry = page.get_by_label("Industry or employer")
    box.press_sequentially("store mgr", delay=10)
    industry.fill("supermarket")
    box.focus()
    choose_first(page, box)
    box.press("End")  # a correction to the same answer, not a new one
    box.press_sequentially("s", delay=10)
    expect(box).to_have_value("store mgrs")
    expect(suggestions(page).first).to_be_visible()
    expect(industry).to_have_value("supermarket")
    assert "industry=supermarket" in suggest_requests(page)[-1]


def test_everything_is_reachable_by_keyboard(page):
    focused = []
    for _ in range(6):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
    assert focused[:4] == ["industry", "description", "scheme", "chosen-code"]
