"""The clerical loop over HTTP: decisions, code search, queues of referred answers, leases
between clerks, undo, export; and two clerks working one queue at once on a live server.

Each test gets its own decision store and its own copy of the small model (learning changes
the model's learned stage; the session's `small_coder` must not see it).
"""

from __future__ import annotations

import copy
import io
import threading
import time
import warnings

import pandas as pd
import pytest

pytest.importorskip("fastapi", reason="the service needs the 'serve' extra (fastapi, uvicorn)")

import httpx  # noqa: E402

with warnings.catch_warnings():  # starlette may warn that it prefers httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from _live import serving  # noqa: E402
from coder import Coder  # noqa: E402
from coder.batch.runner import code_file  # noqa: E402
from coder.decisions import DecisionStore, answer_key, follow_up  # noqa: E402
from coder.service.app import create_app  # noqa: E402

ANSWERS = pd.DataFrame({
    "id": [f"R{i:02d}" for i in range(12)],
    "job_title": ["manager", "sparky", "teacher", "manager", "Sparky", "engineer", "chief bottle washer",
                  "nurse", "teacher", "dont know", "director", "manager"],
    "industry": ["hotel", "", "", "", "", "", "", "hospital", "", "", "small firm", "hotel"],
    "what_they_do": ["", "wires houses", "", "", "wires houses", "", "", "", "", "", "", ""],
})


@pytest.fixture(scope="module")
def files(tmp_path_factory, small_coder):
    """An answers file coded by the small model: the coded file and its referral file."""
    folder = tmp_path_factory.mktemp("clerical")
    ANSWERS.to_csv(folder / "answers.csv", index=False)
    code_file(folder / "answers.csv", folder / "coded.csv", "job_title", industry_column="industry",
              description_column="what_they_do", refer=folder / "refer.csv", coder=small_coder, jobs=1)
    coded = pd.read_csv(folder / "coded.csv", dtype=str, keep_default_na=False)
    refer = pd.read_csv(folder / "refer.csv", dtype=str, keep_default_na=False)
    assert len(refer) >= 6, "the small model should refer most of these answers"
    return {"folder": folder, "coded": coded, "refer": refer}


def distinct(frame: pd.DataFrame) -> int:
    return len({answer_key(t, i or None, d or None) for t, i, d in
                zip(frame["job_title"], frame["industry"], frame["what_they_do"])})


@pytest.fixture
def served(tmp_path, small_coder, small_model_dir):
    store = DecisionStore(tmp_path / "decisions.sqlite")
    coder = Coder(copy.deepcopy(small_coder.model), decisions=store)
    app = create_app(coder, model_dir=small_model_dir)
    with TestClient(app) as client:
        yield client, store, app


def upload(client, path, name=None, **params):
    return client.post("/queues", params={"name": name or path.name, **params}, content=path.read_bytes(),
                       headers={"Content-Type": "application/octet-stream"})


ANN = {"who": "ann", "session": "ann-session-1"}
BOB = {"who": "bob", "session": "bob-session-1"}


def claim(client, qid, clerk, **extra):
    r = client.post(f"/queues/{qid}/next", json={**clerk, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def decide(client, qid, item, clerk, **body):
    return client.post(f"/queues/{qid}/items/{item}/decide", json={**clerk, **body})


# ---------------------------------------------------------------------------- decisions
def test_a_posted_decision_is_learned_at_once(served):
    client, store, _ = served
    before = client.get("/suggest", params={"q": "sparky", "industry": "building site"}).json()
    assert before["candidates"][0]["method"] != "learned"
    r = client.post("/decisions", json={"title": "Sparky", "industry": "building site", "code": "5241", "who": "ann"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["decision"]["code"] == "5241" and body["decision"]["who"] == "ann"
    assert body["decision"]["key"] == list(answer_key("Sparky", "building site"))
    assert body["standing"] == {"code": "5241", "votes": 1, "total": 1, "share": 1.0, "majority": True}
    assert body["coding"]["candidates"][0]["method"] == "learned" and body["coding"]["status"] == "auto"
    after = client.get("/suggest", params={"q": "sparky", "industry": "Building site"}).json()
    assert (after["code"], after["candidates"][0]["method"]) == ("5241", "learned")
    listed = client.get("/decisions").json()
    assert listed["count"] == 1 and listed["decisions"][0]["id"] == body["decision"]["id"]
    assert store.count() == 1
    gone = client.delete(f"/decisions/{body['decision']['id']}")
    assert gone.status_code == 200 and gone.json()["forgotten"][0]["code"] == "5241"
    again = client.get("/suggest", params={"q": "sparky", "industry": "building site"}).json()
    assert again["candidates"][0]["method"] != "learned"
    assert client.delete(f"/decisions/{body['decision']['id']}").status_code == 404


@pytest.mark.parametrize("body, status, kind", [
    ({"title": "nurse", "code": "9999"}, 422, "unknown_code"),
    ({"title": "   ", "code": "3211"}, 422, "invalid_request"),
    ({"title": "-9", "code": "3211"}, 422, "uncodable_answer"),
    ({"title": "nurse"}, 422, "invalid_request"),
    ({"title": "nurse", "code": "3211", "source": "imported"}, 422, "invalid_request"),
    ({"title": "nurse", "code": "3211", "colour": "red"}, 422, "invalid_request"),
    ({"title": "nurse", "code": "3211", "scheme": "soc1066"}, 422, "unknown_scheme"),
    ({"title": "nurse", "code": "321", "scheme": "soc90"}, 503, "model_unavailable"),
    ({"title": "x" * 201, "code": "3211"}, 422, "invalid_request"),
])
def test_bad_decisions_get_4xx(served, body, status, kind):
    client, store, _ = served
    r = client.post("/decisions", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"] == kind and r.json()["detail"]
    assert store.count() == 0


def test_decisions_need_json_and_a_store(served, small_coder, small_model_dir):
    client, _, _ = served
    assert client.post("/decisions", content=b"{nope", headers={"Content-Type": "application/json"}).status_code == 400
    assert client.post("/decisions", content=b"title=nurse", headers={"Content-Type": "text/plain"}).status_code == 415
    with TestClient(create_app(Coder(small_coder.model, threshold=small_coder.threshold),
                               model_dir=small_model_dir)) as bare:
        r = bare.post("/decisions", json={"title": "nurse", "code": "3211"})
        assert r.status_code == 503 and r.json()["error"] == "no_store"
        assert bare.get("/queues").status_code == 503


def test_search_codes_by_words(served):
    client, _, _ = served
    body = client.get("/codes/soc2000", params={"q": "electrician"}).json()
    assert body["results"][0]["code"] == "5241" and "Electrician" in body["results"][0]["entries"]
    assert body["results"][0]["major_group"]["code"] == "5"
    typed = client.get("/codes/soc2000", params={"q": "hotel manag"}).json()["results"]
    assert typed[0]["code"] == "1221"
    assert [r["code"] for r in client.get("/codes/soc2000", params={"q": "3211"}).json()["results"]] == ["3211"]
    assert all(r["code"].startswith("321") for r in client.get("/codes/soc2000", params={"q": "321"}).json()["results"])
    assert client.get("/codes/soc2000", params={"q": "zzqx"}).json()["results"] == []
    assert client.get("/codes/soc2000", params={"q": ""}).status_code == 422
    assert client.get("/codes/soc1066", params={"q": "nurse"}).status_code == 404
    assert client.get("/codes/soc2000/3211").json()["title"] == "Nurses"  # the code look-up still works


def test_referred_answers_say_what_would_decide(served, small_coder):
    client, _, _ = served
    body = client.get("/suggest", params={"q": "manager"}).json()
    assert body["status"] == "refer"
    expected = [f.to_dict() for f in follow_up(small_coder.code("manager"))]
    assert body["follow_up"] == expected
    assert expected and expected[0]["field"] == "industry" and expected[0]["missing"]
    assert client.get("/suggest", params={"q": "dont know"}).json()["follow_up"] == []


# ---------------------------------------------------------------------------- queues
def test_open_a_referral_file_as_a_queue(served, files):
    client, _, _ = served
    r = upload(client, files["folder"] / "refer.csv")
    assert r.status_code == 201, r.text
    queue = r.json()
    assert (queue["kind"], queue["scheme"], queue["title_column"]) == ("refer", "soc2000", "job_title")
    assert (queue["industry_column"], queue["description_column"]) == ("industry", "what_they_do")
    refer = files["refer"]
    assert queue["rows"] == len(refer) and queue["progress"]["rows"] == len(refer)
    assert queue["progress"]["items"] == distinct(refer) < len(refer)  # repeated answers: one item
    assert upload(client, files["folder"] / "refer.csv").json()["id"] == queue["id"]  # the same queue
    assert [q["id"] for q in client.get("/queues").json()["queues"]] == [queue["id"]]
    assert client.get(f"/queues/{queue['id']}").json()["progress"]["open"] == queue["progress"]["items"]
    assert client.get("/queues/nope").status_code == 404


def test_naming_the_title_column_still_finds_the_context_columns(served, files):
    # Before: naming the title column dropped the guessed industry and description, so
    # "manager" at a hotel and "manager" at a school became one answer with one decision.
    client, _, _ = served
    named = upload(client, files["folder"] / "refer.csv", column="job_title").json()
    assert (named["industry_column"], named["description_column"]) == ("industry", "what_they_do")
    assert named["progress"]["items"] == distinct(files["refer"])


def test_work_through_a_queue_and_export(served, files):
    client, store, _ = served
    qid = upload(client, files["folder"] / "refer.csv").json()["id"]
    first = claim(client, qid, ANN)["item"]
    assert first["item"] == 1 and first["lease_who"] == "ann" and first["state"] == "open"
    assert first["coding"]["candidates"] and first["first_row"] == int(files["refer"]["input_row"][0])
    assert claim(client, qid, ANN)["item"]["item"] == 1  # a session keeps its answer
    r = decide(client, qid, 1, ANN, code="1221")
    assert r.status_code == 200, r.text
    assert r.json()["item"]["state"] == "decided" and r.json()["decision"]["code"] == "1221"
    assert store.count() == 1

    second = claim(client, qid, ANN)["item"]
    assert second["item"] == 2
    r = decide(client, qid, 2, ANN, uncodable=True)
    assert r.status_code == 200 and r.json()["item"]["state"] == "uncodable" and r.json()["decision"] is None
    third = claim(client, qid, ANN)["item"]
    assert client.post(f"/queues/{qid}/items/{third['item']}/skip", json=ANN).status_code == 200
    fourth = claim(client, qid, ANN, skip=[third["item"]])["item"]
    assert fourth["item"] not in (1, 2, third["item"])

    undone = client.post(f"/queues/{qid}/items/2/undo", json=ANN).json()
    assert undone["item"]["item"] == 2 and undone["item"]["state"] == "open" and undone["item"]["coding"]
    assert claim(client, qid, ANN)["item"]["item"] == 2  # the undone answer is the clerk's again
    r = decide(client, qid, 2, ANN, code="5241")
    assert r.status_code == 200
    progress = r.json()["queue"]["progress"]
    assert (progress["decided"], progress["uncodable"]) == (2, 0)

    # Undo of a coded answer forgets its decision too.
    client.post(f"/queues/{qid}/items/1/undo", json=ANN)
    assert [d.code for d in store.list()] == ["5241"]
    decide(client, qid, 1, ANN, code="1221")

    exported = client.get(f"/queues/{qid}/export")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert 'filename="refer-clerical.csv"' in exported.headers["content-disposition"]
    out = pd.read_csv(io.BytesIO(exported.content), dtype=str, keep_default_na=False)
    refer = files["refer"]
    assert list(out.columns) == list(refer.columns) and list(out["id"]) == list(refer["id"])
    items = {}
    for row, (title, industry, description) in enumerate(zip(refer["job_title"], refer["industry"], refer["what_they_do"])):
        items.setdefault(answer_key(title, industry or None, description or None), []).append(row)
    decided = {1: "1221", 2: "5241"}
    for n, rows in enumerate(items.values(), start=1):
        for row in rows:
            if n in decided:
                assert out["soc2000"][row] == decided[n] and out["status"][row] == "auto"
                assert out["method"][row] == "learned" and "ann" in out["matched_entry"][row]
            else:
                assert out.iloc[row].to_dict() == refer.iloc[row].to_dict()


def test_a_coded_file_queues_its_refer_rows_and_exports_every_row(served, files):
    client, _, _ = served
    coded = files["coded"]
    queue = upload(client, files["folder"] / "coded.csv").json()
    assert queue["kind"] == "coded" and queue["rows"] == len(coded)
    refer_rows = coded[coded["status"] == "refer"]
    assert queue["progress"]["items"] == distinct(refer_rows) and queue["progress"]["rows"] == len(refer_rows)
    item = claim(client, queue["id"], BOB)["item"]
    assert decide(client, queue["id"], item["item"], BOB, code="9233").status_code == 200
    out = pd.read_csv(io.BytesIO(client.get(f"/queues/{queue['id']}/export").content), dtype=str,
                      keep_default_na=False)
    assert len(out) == len(coded) and list(out["id"]) == list(coded["id"])
    changed = out["soc2000"] != coded["soc2000"]
    assert set(out.loc[changed, "soc2000"]) == {"9233"} and changed.sum() == item["rows"]
    assert (out.loc[~changed] == coded.loc[~changed]).all().all()
    xlsx = client.get(f"/queues/{queue['id']}/export", params={"format": "xlsx"})
    assert xlsx.status_code == 200 and "spreadsheetml" in xlsx.headers["content-type"]
    assert len(pd.read_excel(io.BytesIO(xlsx.content), dtype=str)) == len(coded)


def test_a_queue_given_by_path_survives_a_restart(served, files, small_coder, small_model_dir):
    client, store, app = served
    info = app.state.queues.open_file(files["folder"] / "refer.csv")
    item = claim(client, info.id, ANN)["item"]
    decide(client, info.id, item["item"], ANN, code="1221")
    # A new service on the same store carries on where the first stopped.
    coder = Coder(copy.deepcopy(small_coder.model), decisions=store)
    with TestClient(create_app(coder, model_dir=small_model_dir)) as other:
        assert other.get(f"/queues/{info.id}").json()["progress"]["decided"] == 1
        assert claim(other, info.id, BOB)["item"]["item"] != item["item"]
        assert other.get("/suggest", params={"q": item["title"], "industry": item["industry"] or "",
                                             "description": item["description"] or ""}).json()[
            "candidates"][0]["method"] == "learned"


def test_two_clerks_never_share_an_answer(served, files):
    client, store, app = served
    qid = upload(client, files["folder"] / "refer.csv").json()["id"]
    a = claim(client, qid, ANN)["item"]
    b = claim(client, qid, BOB)["item"]
    assert a["item"] != b["item"]
    assert claim(client, qid, BOB)["queue"]["progress"]["leased"] == 1  # ann's, seen by bob
    r = decide(client, qid, a["item"], BOB, code="1221")
    assert r.status_code == 409 and "being coded by ann" in r.json()["detail"]
    assert decide(client, qid, a["item"], ANN, code="1221").status_code == 200
    r = decide(client, qid, a["item"], BOB, code="9233")
    assert r.status_code == 409 and "already decided by ann" in r.json()["detail"]
    r = client.post(f"/queues/{qid}/items/{a['item']}/undo", json=BOB)
    assert r.status_code == 409 and "only they can undo" in r.json()["detail"]
    assert [d.code for d in store.list()] == ["1221"]
    # A lease runs out: an answer its clerk left is free again.
    app.state.queues.lease_seconds = 0.3
    c = claim(client, qid, ANN)["item"]
    time.sleep(0.4)
    assert claim(client, qid, BOB, skip=[b["item"]])["item"]["item"] == c["item"]
    r = decide(client, qid, c["item"], ANN, code="1221")
    assert r.status_code == 409 and "being coded by bob" in r.json()["detail"]


@pytest.mark.parametrize("name, content, params, kind, message", [
    ("refer.xlsx", b"not a zip", {}, "unreadable_queue", "not a readable .xlsx"),
    ("plain.csv", b"job_title\nnurse\n", {}, "unreadable_queue", "no 'status' column"),
    ("refer.csv", b"", {}, "unreadable_queue", "empty"),
    ("refer.doc", b"x", {}, "invalid_request", "extension"),
    ("../refer.csv", b"x", {}, "invalid_request", "without folders"),
    ("coded.csv", b"who,status\nnurse,auto\n", {}, "unreadable_queue", "which column holds the job titles"),
    ("coded.csv", b"job_title,status\nnurse,auto\n", {}, "unreadable_queue", "no rows with status 'refer'"),
    ("coded.csv", b"job_title,status\nnurse,refer\n", {"column": "title"}, "unreadable_queue", "no column 'title'"),
])
def test_bad_uploads_are_4xx(served, name, content, params, kind, message):
    client, _, _ = served
    r = client.post("/queues", params={"name": name, **params}, content=content)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == kind and message in r.json()["detail"]


def test_uploads_have_their_own_size_limit(tmp_path, small_coder, small_model_dir, files):
    store = DecisionStore(tmp_path / "d.sqlite")
    app = create_app(Coder(copy.deepcopy(small_coder.model), decisions=store), model_dir=small_model_dir,
                     max_upload_bytes=200)
    with TestClient(app) as client:
        r = upload(client, files["folder"] / "refer.csv")
        assert r.status_code == 413 and r.json()["error"] == "payload_too_large"


def test_queue_requests_are_validated(served, files):
    client, _, _ = served
    qid = upload(client, files["folder"] / "refer.csv").json()["id"]
    assert client.post(f"/queues/{qid}/next", json={"who": "ann"}).status_code == 422  # no session
    assert client.post(f"/queues/{qid}/next", json={"who": "ann", "session": "short"}).status_code == 422
    assert client.post("/queues/nope/next", json=ANN).status_code == 404
    item = claim(client, qid, ANN)["item"]["item"]
    assert decide(client, qid, item, ANN).status_code == 422  # neither a code nor uncodable
    assert decide(client, qid, item, ANN, code="3211", uncodable=True).status_code == 422
    assert decide(client, qid, item, ANN, code="0000").json()["error"] == "unknown_code"
    assert decide(client, qid, 9999, ANN, code="3211").status_code == 404
    assert client.post(f"/queues/{qid}/items/{item}/undo", json=ANN).status_code == 409  # nothing to undo
    assert client.get(f"/queues/{qid}/export", params={"format": "doc"}).status_code == 422


# ---------------------------------------------------------------------------- two clerks at once
@pytest.fixture
def live(tmp_path, small_coder, small_model_dir):
    pytest.importorskip("uvicorn")
    store = DecisionStore(tmp_path / "decisions.sqlite")
    app = create_app(Coder(copy.deepcopy(small_coder.model), decisions=store), model_dir=small_model_dir)
    with serving(app) as base:
        yield base.rstrip("/"), store


def test_two_clerks_work_one_queue_at_once_and_nothing_is_lost(live, files):
    base, store = live
    path = files["folder"] / "refer.csv"
    with httpx.Client(base_url=base, timeout=30) as c:
        queue = c.post("/queues", params={"name": "refer.csv"}, content=path.read_bytes()).json()
    qid, items = queue["id"], queue["progress"]["items"]
    done: dict[str, list[int]] = {"ann": [], "bob": []}
    conflicts: list[int] = []
    errors: list[str] = []
    start = threading.Barrier(2)

    def clerk(who: str, code: str) -> None:
        me = {"who": who, "session": f"{who}-session-xyz"}
        with httpx.Client(base_url=base, timeout=30) as c:
            start.wait()
            while True:
                item = c.post(f"/queues/{qid}/next", json=me).json()["item"]
                if item is None:
                    return
                r = c.post(f"/queues/{qid}/items/{item['item']}/decide", json={**me, "code": code})
                if r.status_code == 409:
                    conflicts.append(item["item"])
                elif r.status_code != 200:
                    errors.append(r.text)
                    return
                else:
                    done[who].append(item["item"])

    threads = [threading.Thread(target=clerk, args=(who, code)) for who, code in (("ann", "1221"), ("bob", "9233"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and not conflicts
    assert not set(done["ann"]) & set(done["bob"])  # never the same answer twice
    assert sorted(done["ann"] + done["bob"]) == list(range(1, items + 1))  # every answer, once
    decisions = store.list()
    assert len(decisions) == items  # nothing lost
    assert sorted((d.who, d.code) for d in decisions) == sorted(
        [("ann", "1221")] * len(done["ann"]) + [("bob", "9233")] * len(done["bob"]))
    with httpx.Client(base_url=base, timeout=30) as c:
        progress = c.get(f"/queues/{qid}").json()["progress"]
        assert (progress["open"], progress["decided"], progress["rows_done"]) == (0, items, progress["rows"])
