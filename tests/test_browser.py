"""The type-ahead page in headless Chromium: type, see suggestions, pick one with the keyboard.

Uses Debian's Chromium (/usr/bin/chromium, installed by .ci/install-browser) driven by
Playwright's Python package through ``executable_path``; Playwright's own browser downloads
are never used. Skipped, saying so, only where Chromium (or Playwright) is not installed.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(),
    reason="Chromium is not installed (run .ci/install-browser): browser test skipped",
)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python package) is not installed")
pytest.importorskip("uvicorn", reason="the service needs the 'serve' extra (fastapi, uvicorn)")

from _live import serving  # noqa: E402
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
    with serving(app) as base:
        yield base, small_coder


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


def test_a_chosen_code_shows_its_codes_in_the_other_schemes(page, live_server):
    from coder.derivation import candidate_codes

    _, coder = live_server
    page.get_by_label("Also show a chosen code in the other schemes").check()
    box = page.get_by_role("combobox", name="Job title")
    with page.expect_response(lambda r: "/suggest?" in r.url and "also=isco08" in r.url):
        box.press_sequentially("staff nurse", delay=10)
    choose_first(page, box)
    best = coder.code("staff nurse").candidates[0]
    want = candidate_codes("soc2000", best, ["soc90", "soc2010", "soc2020", "isco08"])
    expect(page.locator("#chosen-others")).to_have_text(
        "In other schemes: " + " · ".join(f"{n.upper().replace('ISCO08', 'ISCO-08')} {c}" for n, c in want.items()))


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
    assert focused[:5] == ["industry", "description", "scheme", "others", "chosen-code"]


# ---------------------------------------------------------------------------- the clerical loop
@pytest.fixture(scope="module")
def clerical_server(small_coder, small_model_dir, tmp_path_factory):
    """uvicorn serving a copy of the small model with a decision store, and a queue opened
    from a referral file (as `coder serve --queue refer.csv` does)."""
    import copy

    import pandas as pd

    from coder.batch.runner import code_file
    from coder.decisions import DecisionStore
    from coder.service.queue import QueueStore

    folder = tmp_path_factory.mktemp("clerical-browser")
    pd.DataFrame({
        "id": [f"R{i}" for i in range(7)],
        "job_title": ["manager", "sparky", "teacher", "Manager", "chief bottle washer", "engineer", "sparky"],
        "industry": ["hotel", "building site", "", "hotel", "", "", "building site"],
    }).to_csv(folder / "answers.csv", index=False)
    code_file(folder / "answers.csv", folder / "coded.csv", "job_title", industry_column="industry",
              refer=folder / "refer.csv", coder=small_coder, jobs=1)
    refer = pd.read_csv(folder / "refer.csv", dtype=str, keep_default_na=False)
    store = DecisionStore(folder / "decisions.sqlite")
    queue = QueueStore(store).open_file(folder / "refer.csv")
    assert queue.progress.items >= 4, "the small model should refer these answers"
    served = Coder(copy.deepcopy(small_coder.model), decisions=store)
    app = create_app(served, model_dir=small_model_dir)
    with serving(app) as base:
        yield {"base": base, "store": store, "queue": queue, "refer": refer, "folder": folder}


@pytest.fixture
def clerk(browser, clerical_server):
    base = clerical_server["base"]
    context = browser.new_context(base_url=base, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # A refused request (409) is logged by Chromium as a console error; the page handles it.
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and "409" not in msg.text else None)
    page.on("request", lambda req: requests.append(req.url))
    yield page
    context.close()
    assert not errors, f"errors in the page: {errors}"
    assert all(url.startswith(base) for url in requests), f"the page fetched something remote: {requests}"


def progress_done(page) -> int:
    return int(page.locator("#progress").inner_text().split(" of ")[0])


def test_the_clerical_loop_by_keyboard(clerk, clerical_server, small_coder):
    """Open a queue, decide by keyboard only (choose, uncodable, skip, undo, search), export,
    and re-code: the decided answers come back `learned`."""
    import copy

    import pandas as pd

    from coder.decisions import answer_key

    page, queue = clerk, clerical_server["queue"]
    items = queue.progress.items
    page.goto(f"clerical?queue={queue.id}")
    name = page.get_by_label("Your name")
    expect(name).to_be_focused()
    name.press_sequentially("ann", delay=10)
    name.press("Enter")
    expect(page.locator("#progress")).to_contain_text(f"0 of {items} answers done")
    candidates = page.get_by_role("listbox", name="Candidates")
    expect(candidates).to_be_focused()
    title = page.locator("#answer-title")
    options = candidates.get_by_role("option")

    chosen: dict[str, str] = {}  # answer title shown -> code decided

    work = page.locator("#work")

    def choose(press: list[str]) -> None:
        expect(work).to_have_attribute("aria-busy", "false")  # the answer shown is the one to decide
        shown = title.inner_text()
        done = progress_done(page)
        for key in press:
            page.keyboard.press(key)
        active = candidates.get_attribute("aria-activedescendant")
        code = page.locator(f"#{active}").get_attribute("data-code")
        page.keyboard.press("Enter")
        expect(page.locator("#progress")).to_contain_text(f"{done + 1} of {items}")
        chosen[shown] = code

    # 1: the second candidate (↓ Enter).
    expect(options.first).to_be_visible()
    expect(page.locator("#answer-where")).to_contain_text("Answer 1")
    choose(["ArrowDown"])
    # 2: uncodable (u), then undone (z) and coded by a search instead (/ words ↓ Enter).
    expect(page.locator("#answer-where")).to_contain_text("Answer 2")
    expect(work).to_have_attribute("aria-busy", "false")
    second = title.inner_text()
    page.keyboard.press("u")
    expect(page.locator("#progress")).to_contain_text(f"2 of {items} answers done (1 coded, 1 uncodable)")
    expect(work).to_have_attribute("aria-busy", "false")
    third = title.inner_text()
    # 3: skipped (s): it comes back after the others.
    page.keyboard.press("s")
    expect(page.locator("#message")).to_contain_text("Skipped")
    expect(page.locator("#answer-where")).not_to_contain_text("Answer 3")
    expect(work).to_have_attribute("aria-busy", "false")
    page.keyboard.press("z")
    expect(title).to_have_text(second)
    expect(page.locator("#message")).to_contain_text("Undone")
    expect(page.locator("#progress")).to_contain_text(f"1 of {items} answers done (1 coded, 0 uncodable)")
    page.keyboard.press("/")
    search = page.get_by_role("combobox", name="Search any code by words")
    expect(search).to_be_focused()
    search.press_sequentially("electrician", delay=10)
    hits = page.get_by_role("listbox", name="Codes found").get_by_role("option")
    expect(hits.first).to_have_attribute("data-code", "5241")
    search.press("Enter")
    expect(page.locator("#progress")).to_contain_text(f"2 of {items}")
    expect(work).to_have_attribute("aria-busy", "false")
    chosen[second] = "5241"
    # The rest: the first candidate each (Enter); the skipped answer comes last.
    seen = []
    while page.locator("#current").is_visible():
        expect(work).to_have_attribute("aria-busy", "false")
        if not page.locator("#current").is_visible():
            break
        seen.append(title.inner_text())
        choose([])
    assert seen[-1] == third
    expect(page.locator("#finished-text")).to_contain_text(f"All {items} answers are done")
    expect(page.locator("#export")).to_be_focused()

    with page.expect_download() as download:
        page.keyboard.press("Enter")
    assert download.value.suggested_filename == "refer-clerical.csv"
    out = pd.read_csv(download.value.path(), dtype=str, keep_default_na=False)
    refer = clerical_server["refer"]
    assert list(out["id"]) == list(refer["id"])  # every row, in order
    assert (out["status"] == "auto").all() and (out["method"] == "learned").all()
    for _, row in out.iterrows():
        assert row["soc2000"] == chosen[next(t for t in chosen if answer_key(t, None) and
                                             answer_key(t)[0] == answer_key(row["job_title"])[0])]
        assert "ann" in row["matched_entry"]

    # Re-coding with the store: every decided answer comes back `learned` with its code.
    again = Coder(copy.deepcopy(small_coder.model), decisions=clerical_server["store"])
    for _, row in refer.iterrows():
        result = again.code(row["job_title"], row["industry"] or None)
        assert result.method == "learned" and result.status == "auto"
        assert result.code == out.loc[out["id"] == row["id"], "soc2000"].item()


def test_the_type_ahead_page_saves_a_decision(clerk, clerical_server):
    page = clerk
    page.goto("./")
    box = page.get_by_role("combobox", name="Job title")
    box.press_sequentially("chippy", delay=10)
    page.get_by_label("Industry or employer").fill("kitchen fitters")
    box.focus()
    expect(suggestions(page).first).to_be_visible()
    box.press("ArrowDown")
    box.press("ArrowDown")
    box.press("Enter")
    code = page.get_by_role("textbox", name="Chosen code").input_value()
    page.get_by_label("Your name").fill("bob")
    page.get_by_role("button", name="Save as decision").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#save-status")).to_contain_text(f"is {code} (learned; 1 of 1 decisions)")
    (decision,) = clerical_server["store"].list(who="bob")
    assert (decision.title, decision.industry, decision.code) == ("chippy", "kitchen fitters", code)
    # The same answer again: the decided code first, method learned.
    box.fill("")
    box.press_sequentially("chippy", delay=10)
    with page.expect_response(lambda r: "/suggest?" in r.url and "industry=kitchen" in r.url):
        page.get_by_label("Industry or employer").fill("kitchen fitters")
    box.focus()
    expect(suggestions(page).first.locator(".meta")).to_contain_text("(learned)")
    expect(suggestions(page).first).to_have_attribute("data-code", code)


def test_the_clerical_page_opens_an_uploaded_file(clerk, clerical_server):
    page = clerk
    page.goto("clerical")
    coded = clerical_server["folder"] / "coded.csv"  # a coded file: its refer rows are queued
    page.get_by_label("File").set_input_files(str(coded))
    page.get_by_label("Title column").fill("job_title")
    page.get_by_role("button", name="Open file").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#message")).to_contain_text("Opened coded.csv")
    expect(page.get_by_role("button", name="Start coding")).to_be_focused()
    expect(page.get_by_label("Queue")).to_contain_text("coded.csv")
    page.get_by_label("Your name").fill("cat")
    page.get_by_role("button", name="Start coding").press("Enter")
    expect(page.get_by_role("listbox", name="Candidates")).to_be_focused()
    expect(page).to_have_url(re.compile(r"clerical\?queue=[0-9a-f]{16}$"))
