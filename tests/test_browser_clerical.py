"""The clerical loop end to end in headless Chromium: open a coded file as a queue on the
clerical page, decide answers by keyboard only, export, re-code: the decided answers come
back ``learned``.

The browser and page come from tests/test_browser.py (Debian's Chromium driven by
Playwright's Python package; skipped, saying so, where either is missing). Its ``page``
fixture asks for ``live_server``; this module's ``live_server`` is the one it gets: the
small test model served with a decision store (set up as tests/test_clerical.py's
``served`` is), on a free loopback port.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

# Import first: its module-level importorskip calls skip this module too, with their messages.
from test_browser import CHROMIUM, browser, page  # noqa: F401  (fixtures used by name)

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(),
    reason="Chromium is not installed (run .ci/install-browser): browser test skipped",
)

import httpx  # noqa: E402
import pandas as pd  # noqa: E402
from playwright.sync_api import expect  # noqa: E402

from _live import serving  # noqa: E402
from coder import Coder  # noqa: E402
from coder.batch.runner import code_file  # noqa: E402
from coder.decisions import DecisionStore, answer_key  # noqa: E402
from coder.schemes import MISSING_CODE  # noqa: E402
from coder.service.app import create_app  # noqa: E402
from coder.service.clerical import QUEUE_K  # noqa: E402

WHO = "ann"
# Survey answers, some repeated (one queue item, several rows); "dont know" is uncodable, so
# it is not queued and must come back untouched in the export.
ANSWERS = pd.DataFrame({
    "id": [f"R{i}" for i in range(9)],
    "job_title": ["manager", "sparky", "teacher", "Manager", "dont know", "engineer", "sparky",
                  "chief bottle washer", "nurse"],
    "industry": ["hotel", "", "", "hotel", "", "", "", "", "hospital"],
    "what_they_do": ["", "wires houses", "", "", "", "", "wires houses", "", ""],
})


def key_of(title: str, industry: str | None, description: str | None):
    return answer_key(title, industry or None, description or None)


@pytest.fixture(scope="module")
def coded(tmp_path_factory, small_coder):
    """The answers coded by the small model (every row; the referred ones are queued)."""
    folder = tmp_path_factory.mktemp("browser-clerical")
    ANSWERS.to_csv(folder / "answers.csv", index=False)
    code_file(folder / "answers.csv", folder / "coded.csv", "job_title", industry_column="industry",
              description_column="what_they_do", coder=small_coder, jobs=1)
    frame = pd.read_csv(folder / "coded.csv", dtype=str, keep_default_na=False)
    refer = frame[frame["status"] == "refer"]
    keys = [key_of(t, i, d) for t, i, d in zip(frame["job_title"], frame["industry"], frame["what_they_do"])]
    items = list(dict.fromkeys(keys[i] for i in refer.index))  # distinct referred answers, file order
    assert len(items) >= 5 and len(refer) > len(items), "the small model should refer these (repeated) answers"
    assert (frame["status"] == "uncodable").sum() == 1
    return {"path": folder / "coded.csv", "frame": frame, "keys": keys, "items": items, "refer_rows": len(refer),
            "answers": {k: (t, i or None, d or None) for k, t, i, d in zip(keys, frame["job_title"], frame["industry"],
                                                                          frame["what_they_do"]) if k in items}}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return DecisionStore(tmp_path_factory.mktemp("browser-clerical-store") / "decisions.sqlite")


@pytest.fixture(scope="module")
def live_server(small_coder, small_model_dir, store):
    """As test_browser.py's live_server (which this replaces for its ``page`` fixture), but the
    served coder (a copy of the small model: it learns) uses the decision store."""
    served = Coder(copy.deepcopy(small_coder.model), decisions=store)
    app = create_app(served, model_dir=small_model_dir)
    with serving(app) as base:
        yield base, small_coder


def recode(base: str, answers: list[tuple[str, str | None, str | None]]) -> list[dict]:
    """The answers coded again by the running service (POST /code)."""
    body = {"items": [{"title": t, "industry": i, "description": d} for t, i, d in answers], "k": 3}
    r = httpx.post(base + "code", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["results"]


def is_decided(result: dict) -> bool:
    return any(c["matched_entry"].startswith("decided by") for c in result["candidates"])


def test_open_decide_by_keyboard_export_and_recode_learned(page, live_server, store, coded, small_coder):
    base, coder = live_server
    items, refer_rows, answers = coded["items"], coded["refer_rows"], coded["answers"]
    n = len(items)
    rows_of = {k: coded["keys"].count(k) for k in items}
    before = recode(base, [answers[k] for k in items])
    assert not any(r["status"] == "auto" or is_decided(r) for r in before), before

    # Open the coded file as a queue: type the name, choose the file, open it, start.
    page.goto("clerical")
    who = page.get_by_label("Your name")
    expect(who).to_be_focused()
    who.press_sequentially(WHO, delay=10)
    page.get_by_label("File").set_input_files(str(coded["path"]))  # a file chooser: no keys for that
    page.get_by_role("button", name="Open file").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#message")).to_have_text(f"Opened coded.csv: {n} answers to code ({refer_rows} rows).")
    start = page.get_by_role("button", name="Start coding")
    expect(start).to_be_focused()
    page.keyboard.press("Enter")

    candidates = page.get_by_role("listbox", name="Candidates")
    options = candidates.get_by_role("option")
    work, progress, message = page.locator("#work"), page.locator("#progress"), page.locator("#message")
    expect(candidates).to_be_focused()
    expect(page).to_have_url(re.compile(r"clerical\?queue=[0-9a-f]{16}$"))
    expect(progress).to_have_text(f"0 of {n} answers done (0 coded, 0 uncodable) · 0 of {refer_rows} rows")

    def shown() -> tuple:
        """The answer on screen, once it has loaded: its key and what the page shows of it."""
        expect(work).to_have_attribute("aria-busy", "false")
        expect(options.first).to_be_visible()
        title = page.locator("#answer-title").inner_text()
        given = [page.locator(f"#answer-{part}").inner_text() for part in ("industry", "description")]
        industry, description = (None if g == "not given" else g for g in given)
        return key_of(title, industry, description), (title, industry, description)

    def expect_progress(coded_: int, uncodable: int, rows: int) -> None:
        expect(progress).to_have_text(f"{coded_ + uncodable} of {n} answers done ({coded_} coded, {uncodable} "
                                      f"uncodable) · {rows} of {refer_rows} rows")

    decided: dict[tuple, str] = {}
    uncodable: set[tuple] = set()

    def choose(keys: list[str], active: int) -> None:
        """Move through the candidates with ``keys``, check the one now active, Enter."""
        key, _ = shown()
        shown_codes = [o.get_attribute("data-code") for o in options.all()]
        for k in keys:
            page.keyboard.press(k)
        expect(candidates).to_have_attribute("aria-activedescendant", f"cand-{active}")
        expect(options.nth(active)).to_have_attribute("aria-selected", "true")
        expect(candidates.locator('[role=option][aria-selected="true"]')).to_have_count(1)
        with page.expect_response(lambda r: r.url.endswith("/decide")) as response:
            page.keyboard.press("Enter")
        body = response.value.json()
        assert response.value.status == 200, body
        assert key_of(body["item"]["title"], body["item"]["industry"], body["item"]["description"]) == key
        assert body["decision"]["code"] == shown_codes[active] and body["decision"]["who"] == WHO
        decided[key] = shown_codes[active]
        expect(message).to_contain_text(f"as {shown_codes[active]} (saved;")

    # 1: the first answer shows the coder's candidates, best first; the second one by ↓ ↓ ↑ Enter.
    key, (title, industry, description) = shown()
    assert key == items[0]
    expect(page.locator("#answer-status")).to_contain_text("refer")
    assert [o.get_attribute("data-code") for o in options.all()] == [
        c.code for c in coder.code(title, industry, description, k=QUEUE_K).candidates]
    expect(candidates).to_have_attribute("aria-activedescendant", "cand-0")
    choose(["ArrowDown", "ArrowDown", "ArrowUp"], active=1)
    expect_progress(1, 0, rows_of[key])

    # 2: skipped (s): nothing is decided, the next answer comes up.
    skipped, _ = shown()
    page.keyboard.press("s")
    expect(message).to_contain_text("Skipped")
    expect_progress(1, 0, rows_of[key])
    assert shown()[0] not in (skipped, key)

    # 3: uncodable (u).
    third, _ = shown()
    page.keyboard.press("u")
    expect_progress(1, 1, rows_of[key] + rows_of[third])
    expect(message).to_contain_text("uncodable")
    uncodable.add(third)

    # 4: ↑ wraps round to the last candidate; Enter.
    fourth, _ = shown()
    last = options.count() - 1
    assert last >= 1
    choose(["ArrowUp"], active=last)
    expect_progress(2, 1, rows_of[key] + rows_of[third] + rows_of[fourth])
    assert len({key, skipped, third, fourth}) == 4
    assert [(d.who, d.code) for d in store.list()] == [(WHO, decided[key]), (WHO, decided[fourth])]

    # Export (e) mid-queue: every row in order, decisions merged in, the rest as they were.
    expect(candidates).to_be_focused()
    with page.expect_download() as download:
        page.keyboard.press("e")
    assert download.value.suggested_filename == "coded-clerical.csv"
    out = pd.read_csv(download.value.path(), dtype=str, keep_default_na=False)
    original = coded["frame"]
    assert list(out.columns) == list(original.columns)
    assert list(out["id"]) == list(original["id"])  # every row, in order
    inputs = ["id", "job_title", "industry", "what_they_do"]
    assert out[inputs].equals(original[inputs])
    merged = 0
    for row, k in enumerate(coded["keys"]):
        got, was = out.iloc[row].to_dict(), original.iloc[row].to_dict()
        if k in decided:
            assert got["soc2000"] == decided[k] and got["soc2000_title"] == coder.scheme.title(decided[k])
            assert (got["status"], got["method"], got["reason"]) == ("auto", "learned", "")
            assert got["matched_entry"].startswith(f"decided by {WHO}") and got["matched_entry"].endswith("(clerical)")
            merged += 1
        elif k in uncodable:
            assert (got["soc2000"], got["status"]) == (MISSING_CODE, "uncodable")
            assert got["reason"] == f"marked uncodable by {WHO} (clerical)"
            merged += 1
        else:  # skipped, not reached, or never queued (uncodable already)
            assert got == was, (row, got, was)
    assert merged == rows_of[key] + rows_of[third] + rows_of[fourth] >= 3
    assert sum(rows_of[k] for k in decided) > len(decided)  # a repeated answer: decided once, every row

    # Re-code through the API: the decided answers come back learned, with the decided code.
    after = recode(base, [answers[k] for k in items])
    for k, result in zip(items, after):
        if k in decided:
            best = result["candidates"][0]
            assert (result["status"], result["code"]) == ("auto", decided[k]), (answers[k], result)
            assert (best["method"], best["confidence"]) == ("learned", 1.0)
            assert best["matched_entry"].startswith(f"decided by {WHO}")
        else:  # skipped, not reached, or marked uncodable: nothing learned for them
            assert result["status"] == "refer" and not is_decided(result), (answers[k], result)
    # And by a fresh coder on the same store (what a later batch run would get).
    again = Coder(copy.deepcopy(small_coder.model), decisions=store)
    for k, code in decided.items():
        result = again.code(*answers[k])
        assert (result.status, result.code, result.method) == ("auto", code, "learned"), (answers[k], result)
