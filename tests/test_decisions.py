"""The decision store (`coder.decisions`): the `Decisions` protocol, majorities and conflicts,
imports, exports, several threads and processes writing at once, and follow-up prompts.

Most tests need no model; those that code answers use a copy of the small model (learning
changes the model's learned stage, which the session's `small_coder` must not see).
"""

from __future__ import annotations

import copy
import csv
import multiprocessing
import sqlite3
import threading

import pytest

from coder import Coder
from coder.decisions import (Decision, DecisionStore, FollowUp, answer_key, default_store_path, follow_up)
from coder.engine import Decisions
from coder.errors import InputError, Reason
from coder.results import Candidate, Result


@pytest.fixture
def store(tmp_path) -> DecisionStore:
    return DecisionStore(tmp_path / "decisions.sqlite")


@pytest.fixture
def learning_coder(small_coder, store) -> Coder:
    """A coder with its own copy of the small model, using ``store``."""
    return Coder(copy.deepcopy(small_coder.model), decisions=store)


def record(store: DecisionStore, title: str, code: str, *, industry=None, description=None, who="", source="clerical"):
    key = answer_key(title, industry, description)
    return store.record("soc2000", (title, industry, description), key, code, who=who, source=source)


# ---------------------------------------------------------------------------- the protocol
def test_implements_the_engine_protocol(store):
    assert isinstance(store, Decisions)


def test_nothing_is_created_until_the_first_write(store):
    assert store.lookup("soc2000", [("nurse", "", "")]) == {}
    assert store.decided("soc2000") == [] and store.list() == [] and store.count() == 0
    assert not store.path.exists()
    record(store, "sparky", "5241")
    assert store.path.is_file()
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_record_lookup_and_provenance(store):
    decided = record(store, "Sparky", "5241", industry="building site", who="ann")
    assert (decided.code, decided.votes, decided.total, decided.who, decided.source) == ("5241", 1, 1, "ann", "clerical")
    assert decided.when.endswith("Z") and decided.when[:2] == "20"
    key = answer_key("Sparky", "building site")
    assert store.lookup("soc2000", [key, ("nurse", "", "")]) == {key: decided}
    (d,) = store.list()
    assert isinstance(d, Decision)
    assert (d.title, d.industry, d.description, d.key, d.scheme) == ("Sparky", "building site", None, key, "soc2000")
    assert store.decided("soc2000") == [(key, "5241")]
    assert store.decided("soc90") == []  # per scheme


def test_the_majority_decides_and_a_tie_has_none(store):
    key = answer_key("manager")
    record(store, "manager", "1221", who="a")
    record(store, "Manager", "1224", who="b")  # the same answer as read
    tie = store.lookup("soc2000", [key])[key]
    assert tie.total == 2 and tie.votes == 1 and tie.share == 0.5
    assert store.decided("soc2000") == []  # no majority: evidence of nothing
    record(store, "manager ", "1224", who="c")
    won = store.lookup("soc2000", [key])[key]
    assert (won.code, won.votes, won.total, won.who) == ("1224", 2, 3, "c")
    assert store.decided("soc2000") == [(key, "1224")]
    (conflict,) = store.conflicts("soc2000")
    assert conflict.votes == (("1224", 2), ("1221", 1)) and conflict.majority == "1224"
    assert "1224 x2" in conflict.describe() and "stands" in conflict.describe()


def test_an_override_settles_the_answer(store):
    key = answer_key("civil servant")
    for who in "abc":
        record(store, "civil servant", "4112", who=who)
    record(store, "civil servant", "2441", who="boss", source="override")
    d = store.lookup("soc2000", [key])[key]
    assert (d.code, d.source, d.share) == ("2441", "override", 1.0)
    assert "override" in d.describe()


def test_big_and_small_lookups_agree(store):
    """Up to FEW_KEYS answers are looked up one by one, more through the cached table."""
    keys = []
    for i in range(70):
        title = f"grade {i} officer"
        record(store, title, "4112" if i % 3 else "4113")
        keys.append(answer_key(title))
    big = store.lookup("soc2000", keys)
    small = {}
    for key in keys:
        small.update(store.lookup("soc2000", [key]))
    assert big == small and len(big) == 70
    record(store, "grade 0 officer", "4112")
    record(store, "grade 0 officer", "4112")  # a write invalidates the cached table
    assert store.lookup("soc2000", keys)[keys[0]].code == "4112"


def test_bad_decisions_are_refused(store):
    with pytest.raises(InputError, match="not a soc2000 unit group"):
        record(store, "nurse", "9999")
    with pytest.raises(InputError, match="source"):
        record(store, "nurse", "3211", source="guess")
    with pytest.raises(InputError, match="job title"):
        store.record("soc2000", ("", None, None), ("", "", ""), "3211")


def test_forget_by_id_and_by_answer(store):
    record(store, "sparky", "5241")
    second = store.record_decision("soc2000", ("Sparky", None, None), answer_key("Sparky"), "5241")[0]
    record(store, "nurse", "3211")
    assert [d.id for d in store.forget(second.id)] == [second.id]
    assert store.forget(second.id) == []
    gone = store.forget(scheme="soc2000", answer=("SPARKY", None, None))
    assert [d.title for d in gone] == ["sparky"]
    assert [d.title for d in store.list()] == ["nurse"]
    with pytest.raises(InputError):
        store.forget()


def test_export_writes_every_decision_as_csv(store, tmp_path):
    record(store, "=cmd|' /C calc'!A0", "9233", who="ann")  # a formula is escaped, not run
    record(store, "nurse", "3211", industry="hospital", who="bob")
    out = tmp_path / "decisions.csv"
    assert store.export(out) == 2
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["code"] for r in rows] == ["9233", "3211"]
    assert rows[0]["title"].startswith("'=") and rows[1]["industry"] == "hospital"
    assert set(rows[0]) >= {"id", "scheme", "title", "industry", "description", "code", "who", "when", "source"}
    with pytest.raises(InputError, match=".csv"):
        store.export(tmp_path / "decisions.xlsx")


def test_answer_key_reads_answers_as_the_engine_does(small_coder, tmp_path):
    """The store's keys must be the engine's: a spy store records what `Coder.learn` passes."""

    class Spy(DecisionStore):
        def __init__(self, path):
            super().__init__(path)
            self.keys = []

        def record(self, scheme, answer, key, code, **kwargs):
            self.keys.append((answer, key))
            return super().record(scheme, answer, key, code, **kwargs)

    spy = Spy(tmp_path / "spy.sqlite")
    coder = Coder(copy.deepcopy(small_coder.model), decisions=spy)
    answers = [("Snr Software Dev", "n/a", None), ("I'm a self-employed plumber", "", "same"),
                ("Nurse (NHS)", "hospital", "looks after patients"), ("CARE ASSISTANT", None, "-9")]
    for title, industry, description in answers:
        coder.learn(title, industry, description, code="3211")
    assert [key for _, key in spy.keys] == [answer_key(*a) for a in answers]
    assert answer_key("student") is None and answer_key("-9") is None and answer_key(None) is None


# ---------------------------------------------------------------------------- learning at once
def test_a_decision_is_used_at_once_and_survives_a_reload(learning_coder, small_coder, store):
    before = learning_coder.code("sparky", "building site")
    learning_coder.learn("sparky", "building site", code="5241", who="ann")
    after = learning_coder.code("sparky", "building site")
    assert (after.code, after.method, after.status) == ("5241", "learned", "auto")
    assert "ann" in after.matched_entry
    assert before.method != "learned"
    # Another coder on the same store (a restart, another process) gets it too.
    other = Coder(copy.deepcopy(small_coder.model), decisions=store)
    assert other.code("Sparky", "Building site").method == "learned"
    # The shipped model is untouched: the session's coder knows nothing of it.
    assert small_coder.code("sparky", "building site").method != "learned"


def test_conflicting_decisions_are_referred(learning_coder):
    learning_coder.learn("director", "small firm", code="1239", who="a")
    learning_coder.learn("director", "small firm", code="1132", who="b")
    result = learning_coder.code("director", "small firm")
    assert result.status == "refer" and result.reason == Reason.CONFLICTING_DECISIONS
    assert result.method == "learned" and result.confidence == 0.5


# ---------------------------------------------------------------------------- imports
def test_import_reports_duplicates_conflicts_and_skips(store):
    titles = ["sparky", "Sparky", "sparky", "manager", "manager", "chippy", "", "nurse", "student", "nurse"]
    codes = ["5241", "5241", "5242", "1221", "1224", "5315", "3211", "9999", "3211", "-9"]
    industries = [None, None, None, "pub", "pub", None, None, None, None, None]
    report = store.import_answers("soc2000", titles, codes, industries, name="team.csv")
    assert (report.rows, report.imported, report.duplicates) == (10, 6, 1)
    assert report.skipped == {"no title": 1, "not a soc2000 unit group": 1, "no code": 1,
                              "not a codable job title (missing marker, no letters, not an occupation)": 1}
    conflicts = {c.title: c for c in report.conflicts}
    assert set(conflicts) == {"sparky", "manager"}
    assert conflicts["sparky"].majority == "5241" and conflicts["sparky"].votes == (("5241", 2), ("5242", 1))
    assert conflicts["manager"].majority is None  # 1 each: referred
    text = "\n".join(report.lines())
    assert "6 imported" in text and "1 duplicates" in text and "2 conflicts" in text
    assert "no majority" in text and "row 8, '9999'" in text
    assert all(d.source == "imported" and d.origin == "team.csv" for d in store.list())


def test_a_file_is_imported_once(store, tmp_path):
    path = tmp_path / "team.csv"
    path.write_text("job,industry,code\nsparky,,5241\nbar manager,pub,1224\nbar manager,pub,1224.0\n", encoding="utf-8")
    first = store.import_file(path, "job", "code", industry_column="industry")
    assert (first.imported, first.duplicates, first.conflicts) == (3, 1, [])
    again = store.import_file(path, "job", "code", industry_column="industry")
    assert again.already is not None and again.imported == 0 and "imported already" in again.lines()[0]
    assert store.count() == 3
    forced = store.import_file(path, "job", "code", industry_column="industry", again=True)
    assert forced.imported == 3 and forced.duplicates == 3 and store.count() == 6
    with pytest.raises(InputError, match="no column 'title'"):
        store.import_file(path, "title", "code")


def test_two_importers_conflict_and_the_majority_decides(store, tmp_path):
    a, b, c = (tmp_path / f"{n}.csv" for n in "abc")
    a.write_text("title,soc\nsparky,5241\nmanager,1221\n", encoding="utf-8")
    b.write_text("title,soc\nsparky,5242\nmanager,1224\n", encoding="utf-8")
    c.write_text("title,soc\nsparky,5241\n", encoding="utf-8")
    assert store.import_file(a, "title", "soc").conflicts == []
    report = store.import_file(b, "title", "soc")
    assert {x.title: x.majority for x in report.conflicts} == {"sparky": None, "manager": None}
    report = store.import_file(c, "title", "soc")
    assert [(x.title, x.majority) for x in report.conflicts] == [("sparky", "5241")]
    assert dict(store.decided("soc2000")) == {answer_key("sparky"): "5241"}


# ---------------------------------------------------------------------------- concurrency
def _write_many(path: str, who: str, n: int) -> None:
    store = DecisionStore(path)
    for i in range(n):
        title = f"{who} answer {i}"
        store.record("soc2000", (title, None, None), answer_key(title), "3211", who=who)
        store.record("soc2000", ("shared answer", None, None), answer_key("shared answer"), "5241", who=who)
    store.import_answers("soc2000", [f"{who} import {i}" for i in range(n)], ["9233"] * n, who=who)


def test_two_processes_write_the_store_at_once(tmp_path):
    path = str(tmp_path / "decisions.sqlite")
    DecisionStore(path).record("soc2000", ("seed", None, None), answer_key("seed"), "3211")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(path, who, 40)) for who in ("p1", "p2")]
    for p in procs:
        p.start()
    _write_many(path, "main", 40)  # and this process at the same time
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = DecisionStore(path)
    assert store.count() == 1 + 3 * 40 * 3
    shared = store.lookup("soc2000", [answer_key("shared answer")])[answer_key("shared answer")]
    assert (shared.votes, shared.total) == (120, 120)


def test_threads_share_one_store(store):
    errors: list[BaseException] = []

    def work(who: str) -> None:
        try:
            for i in range(25):
                record(store, f"{who} job {i}", "3211", who=who)
                store.lookup("soc2000", [answer_key(f"{who} job {i}")])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and store.count() == 100


def test_threads_opening_a_new_store_at_once_all_get_in(tmp_path):
    # Several connections switching a new file to WAL at once: SQLite refuses some at once
    # ("database is locked", no busy timeout); each must wait its turn instead (it failed in
    # about 3% of these rounds before).
    for round_ in range(40):
        store = DecisionStore(tmp_path / f"store{round_}.sqlite")
        errors: list[BaseException] = []
        start = threading.Barrier(6)

        def work() -> None:
            try:
                start.wait()
                with store.transaction():
                    pass
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, (round_, errors[0])


def test_default_path_is_beside_the_models(monkeypatch, tmp_path):
    monkeypatch.delenv("CODER_STORE", raising=False)
    monkeypatch.setenv("CODER_MODEL_DIR", str(tmp_path / "models"))
    assert default_store_path() == tmp_path / "decisions.sqlite"
    assert default_store_path(tmp_path / "elsewhere" / "models") == tmp_path / "elsewhere" / "decisions.sqlite"
    monkeypatch.setenv("CODER_STORE", str(tmp_path / "team.sqlite"))
    assert default_store_path() == tmp_path / "team.sqlite"
    assert DecisionStore().path == tmp_path / "team.sqlite"


def test_a_store_pickles_to_the_same_file(store):
    import pickle

    record(store, "nurse", "3211")
    copy_ = pickle.loads(pickle.dumps(store))
    assert copy_.path == store.path and copy_.count() == 1


def test_a_file_that_is_not_a_store_is_a_clear_error(tmp_path):
    path = tmp_path / "not.sqlite"
    path.write_bytes(b"hello, this is not SQLite" * 100)
    with pytest.raises(InputError, match="not a usable decision store"):
        DecisionStore(path).count()


# ---------------------------------------------------------------------------- follow-up prompts
def _result(candidates, industry=None, description=None) -> Result:
    return Result("manager", industry, "soc2000", "refer",
                  tuple(Candidate(code, "", 0.2, "exact", entry) for code, entry in candidates),
                  reason=Reason.VAGUE, description=description)


def test_follow_up_names_what_would_decide():
    result = _result([("1221", "Manager (hotel)"), ("1151", "Manager (banking)"), ("1224", "Manager (public house)")])
    (prompt,) = follow_up(result)
    assert isinstance(prompt, FollowUp)
    assert (prompt.field, prompt.missing, prompt.entry) == ("industry", True, "Manager")
    options = {o.code: o.qualifiers for o in prompt.options}
    assert list(options) == ["1221", "1151", "1224"]
    assert options["1221"][0] == "hotel" and "holiday camp" in options["1221"] and len(options["1221"]) <= 4
    assert options["1151"][0] == "banking" and options["1224"][0] == "public house"
    assert prompt.to_dict()["options"][0]["title"] == "Hotel and accommodation managers"


def test_follow_up_for_what_they_do_and_given_context():
    result = _result([("1132", "Manager (marketing)"), ("1136", "Manager (computing/IT)"),
                      ("1221", "Manager (hotel)")], industry="a big firm")
    prompts = {p.field: p for p in follow_up(result)}
    assert prompts["description"].missing and {o.code for o in prompts["description"].options} == {"1132", "1136"}
    assert not prompts["industry"].missing  # an industry was given; it did not decide


def test_no_follow_up_when_candidates_differ_by_more_than_a_qualifier():
    assert follow_up(_result([("3211", "Nurse"), ("6111", "Nursing auxiliary")])) == []
    assert follow_up(_result([("1221", "Manager (hotel)"), ("5241", "decided by ann (clerical)")])) == []
