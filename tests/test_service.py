"""HTTP API tests (FastAPI TestClient) over the small soc2000 model.

Every endpoint, and every kind of bad input: each must get a 4xx with a JSON error body,
never a 500 (TestClient re-raises server errors, so a crash fails the test loudly).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import warnings
from contextlib import contextmanager

import pytest

pytest.importorskip("fastapi", reason="the service needs the 'serve' extra (fastapi, uvicorn)")

import httpx  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

with warnings.catch_warnings():  # starlette may warn that it prefers httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from coder import Coder, ModelError  # noqa: E402
from coder.candidates import METHODS  # noqa: E402
from coder.service import app as app_module  # noqa: E402
from coder.service.app import BATCH_CHUNK, MAX_BODY_BYTES, create_app  # noqa: E402
from coder.service.registry import Registry  # noqa: E402
from coder.service.schemas import MAX_DESCRIPTION_CHARS, MAX_INDUSTRY_CHARS, MAX_TEXT_CHARS  # noqa: E402

SUGGEST_KEYS = {"text", "industry", "description", "scheme", "status", "reason", "normalised", "code",
                "candidates", "follow_up"}
CANDIDATE_KEYS = {"code", "title", "major_group", "confidence", "method", "matched_entry"}


def fresh(coder: Coder) -> Coder:
    """A coder sharing the model but with its own cache (the engine cache is not thread-safe)."""
    return Coder(coder.model, threshold=coder.threshold)


@pytest.fixture(scope="module")
def client(small_coder, small_model_dir):
    with TestClient(create_app(fresh(small_coder), model_dir=small_model_dir)) as c:
        yield c


def assert_error(response: httpx.Response, status: int, kind: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    if kind:
        assert body["error"] == kind, body
    return body


# ---------------------------------------------------------------- /suggest
def test_suggest_returns_ranked_candidates(client, small_coder):
    r = client.get("/suggest", params={"q": "nurse"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == SUGGEST_KEYS
    assert body["text"] == "nurse" and body["scheme"] == "soc2000"
    assert body["status"] in {"auto", "refer", "uncodable"}
    cands = body["candidates"]
    assert 1 <= len(cands) <= 5
    assert all(set(c) == CANDIDATE_KEYS for c in cands)
    confidences = [c["confidence"] for c in cands]
    assert confidences == sorted(confidences, reverse=True)
    assert all(0 <= c <= 1 for c in confidences)
    top = cands[0]
    assert body["code"] == top["code"] and re.fullmatch(r"\d{4}", top["code"])
    assert top["major_group"]["code"] == top["code"][0] and top["major_group"]["title"]
    assert top["title"] == small_coder.scheme.title(top["code"])
    assert top["matched_entry"] and top["method"] in METHODS
    expected = small_coder.code("nurse")
    assert [c["code"] for c in cands] == [c.code for c in expected.candidates]


def test_suggest_k_and_industry(client):
    r = client.get("/suggest", params={"q": "store mgr", "industry": "supermarket", "k": 2})
    assert r.status_code == 200
    body = r.json()
    assert len(body["candidates"]) <= 2 and body["industry"] == "supermarket"
    assert client.get("/suggest", params={"q": "store mgr", "k": 20}).status_code == 200
    assert client.get("/suggest", params={"q": "store mgr", "industry": ""}).json()["industry"] is None


class Spy(Coder):
    """A coder that records the (title, industry, description) triples it is asked to code."""

    def __init__(self, model, **kwargs) -> None:
        super().__init__(model, **kwargs)
        self.asked: list[tuple] = []

    def code_many(self, titles, industries=None, descriptions=None, *, k=5):
        titles = list(titles)
        industries = [None] * len(titles) if industries is None else list(industries)
        descriptions = [None] * len(titles) if descriptions is None else list(descriptions)
        self.asked += list(zip(titles, industries, descriptions))
        return super().code_many(titles, industries, descriptions, k=k)


@pytest.fixture(scope="module")
def spy_client(small_coder, small_model_dir):
    spy = Spy(small_coder.model, threshold=small_coder.threshold)
    with TestClient(create_app(spy, model_dir=small_model_dir)) as c:
        yield c, spy


def test_suggest_passes_the_description_to_the_engine_and_echoes_it(spy_client, small_coder):
    client, spy = spy_client
    params = {"q": "factory operative", "industry": "warehouse", "description": "forklift driver"}
    spy.asked.clear()
    body = client.get("/suggest", params=params).json()
    assert spy.asked == [("factory operative", "warehouse", "forklift driver")]
    assert body["description"] == "forklift driver" and body["industry"] == "warehouse"
    expected = small_coder.code("factory operative", "warehouse", "forklift driver")
    assert [c["code"] for c in body["candidates"]] == [c.code for c in expected.candidates]
    assert [c["confidence"] for c in body["candidates"]] == [c.confidence for c in expected.candidates]


@pytest.mark.parametrize("blank", ["", "   ", "\t\n", "\u3000"])
def test_suggest_blank_description_or_industry_is_absent(spy_client, blank):
    client, spy = spy_client
    spy.asked.clear()
    body = client.get("/suggest", params={"q": "nurse", "industry": blank, "description": blank}).json()
    assert spy.asked == [("nurse", None, None)]
    assert body["industry"] is None and body["description"] is None
    assert body == client.get("/suggest", params={"q": "nurse"}).json()


def test_suggest_description_that_says_nothing_is_absent(client):
    # The engine's rule: "n/a", "same", "don't know" and the like say nothing.
    body = client.get("/suggest", params={"q": "nurse", "description": "n/a", "industry": "same"}).json()
    assert body["description"] is None and body["industry"] is None


def test_suggest_longest_industry_and_description_are_fine(client):
    params = {"q": "nurse", "industry": "i" * MAX_INDUSTRY_CHARS, "description": "d" * MAX_DESCRIPTION_CHARS}
    body = client.get("/suggest", params=params).json()
    assert body["industry"] == params["industry"] and body["description"] == params["description"]


def test_suggest_uncodable_is_not_an_error(client):
    body = client.get("/suggest", params={"q": "dont know"}).json()
    assert body["status"] == "uncodable" and body["reason"] and body["candidates"] == []
    assert body["code"] == "-9"
    assert client.get("/suggest", params={"q": "1234 !!"}).json()["status"] == "uncodable"


def test_suggest_scheme_aliases(client):
    assert client.get("/suggest", params={"q": "nurse", "scheme": "SOC-2000"}).json()["scheme"] == "soc2000"


@pytest.mark.parametrize("params, kind", [
    ({}, "invalid_request"),                                   # q missing
    ({"q": ""}, "invalid_request"),
    ({"q": "   "}, "invalid_request"),
    ({"q": "\u3000\ufeff"}, "invalid_request"),
    ({"q": "x" * (MAX_TEXT_CHARS + 1)}, "invalid_request"),
    ({"q": "nurse", "industry": "y" * (MAX_INDUSTRY_CHARS + 1)}, "invalid_request"),
    ({"q": "nurse", "description": "d" * (MAX_DESCRIPTION_CHARS + 1)}, "invalid_request"),
    ({"q": "nurse", "k": 0}, "invalid_request"),
    ({"q": "nurse", "k": 21}, "invalid_request"),
    ({"q": "nurse", "k": "five"}, "invalid_request"),
    ({"q": "nurse", "k": 2.5}, "invalid_request"),
    ({"q": "nurse", "scheme": "soc1066"}, "unknown_scheme"),
])
def test_suggest_bad_input_is_422(client, params, kind):
    body = assert_error(client.get("/suggest", params=params), 422, kind)
    if kind == "invalid_request" and "errors" in body:
        assert body["errors"][0]["loc"][0] == "query"


def test_suggest_200_characters_is_fine(client):
    assert client.get("/suggest", params={"q": "care assistant " * 13 + "abcde"}).status_code == 200


def test_suggest_unbuilt_scheme_is_503_naming_the_fix(client, small_model_dir):
    body = assert_error(client.get("/suggest", params={"q": "nurse", "scheme": "soc90"}), 503,
                        "model_unavailable")
    assert "no built model" in body["detail"]
    assert f"coder build --scheme soc90 --model-dir {small_model_dir}" in body["detail"]  # where it serves from


def test_warm_up_prepares_the_search_for_many_titles(small_model_dir, monkeypatch):
    """The first burst of type-ahead users must not pay for what the engine derives on first
    use: after warm-up, the float32 title vectors of the semantic search for many queries at
    once exist, even when every warm-up title is an index title (those never reach it)."""
    import gc

    coder = Coder.load("soc2000", model_dir=small_model_dir, build=False)  # a model of its own
    titles = [t for t in sorted(set(coder.model.generator.table_.titles_))[::40]
              if len(t) >= 8 and coder.code(t).candidates[0].method == "exact"][:17]
    assert len(titles) == 17
    monkeypatch.setattr(app_module, "WARM_UP_TITLES", tuple(titles))
    semantic = next(s for s in coder.model.generator.stages_ if s.name == "semantic")
    assert getattr(semantic, "_titles32", None) is None
    try:
        with TestClient(create_app(coder, model_dir=small_model_dir, warm_up=True)):
            assert getattr(semantic, "_titles32", None) is not None
    finally:
        gc.unfreeze()  # warm-up froze this test process's objects


# ---------------------------------------------------------------- /code
def test_code_batch_keeps_order_and_counts(client, small_coder):
    items = [{"title": "nurse"}, {"title": None}, {"title": "", "industry": "shop"},
             {"title": "store mgr", "industry": "supermarket"}, {"title": "nurse"}]
    r = client.post("/code", json={"items": items, "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["scheme"] == "soc2000" and body["k"] == 3 and body["count"] == 5
    results = body["results"]
    assert [x["text"] for x in results] == ["nurse", "", "", "store mgr", "nurse"]
    assert results[1]["status"] == results[2]["status"] == "uncodable"
    assert results[0] == results[4]
    assert all(len(x["candidates"]) <= 3 and set(x) == SUGGEST_KEYS for x in results)
    assert sum(body["summary"].values()) == 5 and body["summary"]["uncodable"] >= 2
    assert results[3]["code"] == small_coder.code("store mgr", "supermarket", k=3).code


def test_code_batch_descriptions(spy_client, small_coder):
    client, spy = spy_client
    items = [{"title": "factory operative", "description": "forklift driver"},
             {"title": "factory operative", "description": "  "},
             {"title": "factory operative", "industry": "food", "description": None},
             {"title": "manager", "industry": "", "description": "runs a pub"},
             {"title": None, "description": "forklift driver"}]
    spy.asked.clear()
    results = client.post("/code", json={"items": items}).json()["results"]
    assert spy.asked == [("factory operative", None, "forklift driver"), ("factory operative", None, None),
                         ("factory operative", "food", None), ("manager", None, "runs a pub"),
                         (None, None, "forklift driver")]
    assert [r["description"] for r in results] == ["forklift driver", None, None, "runs a pub", "forklift driver"]
    assert [r["industry"] for r in results] == [None, None, "food", None, None]
    assert results[4]["status"] == "uncodable"  # a description alone is not a title
    for item, result in zip(items[:4], results):
        expected = small_coder.code(item["title"], item.get("industry") or None, item["description"])
        assert [c["code"] for c in result["candidates"]] == [c.code for c in expected.candidates]


def test_code_full_batch_of_1000(client):
    titles = [f"care assistant {i}" if i % 3 else "teacher" for i in range(1000)]
    assert 1000 > BATCH_CHUNK  # exercises the chunking
    r = client.post("/code", json={"items": [{"title": t} for t in titles]})
    assert r.status_code == 200
    assert [x["text"] for x in r.json()["results"]] == titles


@pytest.mark.parametrize("body, kind", [
    ({}, "invalid_request"),
    ([{"title": "nurse"}], "invalid_request"),
    ({"items": []}, "invalid_request"),
    ({"items": "nurse"}, "invalid_request"),
    ({"items": ["nurse"]}, "invalid_request"),
    ({"items": [{"industry": "shop"}]}, "invalid_request"),          # title key missing
    ({"items": [{"title": 42}]}, "invalid_request"),
    ({"items": [{"title": "nurse", "titel": "x"}]}, "invalid_request"),
    ({"items": [{"title": "x" * (MAX_TEXT_CHARS + 1)}]}, "invalid_request"),
    ({"items": [{"title": "nurse", "industry": "y" * (MAX_INDUSTRY_CHARS + 1)}]}, "invalid_request"),
    ({"items": [{"title": "nurse", "description": "d" * (MAX_DESCRIPTION_CHARS + 1)}]}, "invalid_request"),
    ({"items": [{"title": "nurse", "description": 42}]}, "invalid_request"),
    ({"items": [{"title": "nurse", "descripton": "typo"}]}, "invalid_request"),
    ({"items": [{"title": "nurse"}] * 1001}, "invalid_request"),
    ({"items": [{"title": "nurse"}], "k": 0}, "invalid_request"),
    ({"items": [{"title": "nurse"}], "k": 21}, "invalid_request"),
    ({"items": [{"title": "nurse"}], "scheme": "nope"}, "unknown_scheme"),
    ({"items": [{"title": "nurse"}], "extra": 1}, "invalid_request"),
])
def test_code_bad_body_is_422(client, body, kind):
    assert_error(client.post("/code", json=body), 422, kind)


@pytest.mark.parametrize("raw", [b'{"items": [', b"{'items': []}", b"", b"nurse", b'{"items": [{"title": "a"}]}x',
                                 b"\xff\xfe{}"])
def test_code_malformed_json_is_400(client, raw):
    r = client.post("/code", content=raw, headers={"content-type": "application/json"})
    if raw == b"":  # no body at all: the items are missing
        assert_error(r, 422, "invalid_request")
    else:
        assert_error(r, 400, "malformed_json")


def test_code_not_json_is_415(client):
    r = client.post("/code", content=b'{"items": [{"title": "nurse"}]}', headers={"content-type": "text/plain"})
    assert_error(r, 415, "unsupported_media_type")
    r = client.post("/code", data={"items": "nurse"})  # a form post
    assert_error(r, 415, "unsupported_media_type")


def test_code_longest_batch_fits_the_body_limit(client):
    item = {"title": "t" * MAX_TEXT_CHARS, "industry": "i" * MAX_INDUSTRY_CHARS,
            "description": "d" * MAX_DESCRIPTION_CHARS}
    body = json.dumps({"items": [item] * 1000}).encode()
    assert len(body) < MAX_BODY_BYTES
    r = client.post("/code", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json()["count"] == 1000


def test_code_oversize_body_is_413(client):
    item = {"title": "x" * 200, "industry": "y" * 200}
    big = json.dumps({"items": [item] * (MAX_BODY_BYTES // 400 + 1)}).encode()
    assert len(big) > MAX_BODY_BYTES
    assert_error(client.post("/code", content=big, headers={"content-type": "application/json"}), 413,
                 "payload_too_large")

    def stream():  # no Content-Length: the limit must hold as the body streams in
        yield b'{"items": ['
        for _ in range(MAX_BODY_BYTES // 19 + 1):
            yield b'{"title": "nurse"},'
        yield b'{"title": "nurse"}]}'

    r = client.post("/code", content=stream(), headers={"content-type": "application/json"})
    assert_error(r, 413, "payload_too_large")


def test_body_limit_is_configurable(small_coder, small_model_dir):
    app = create_app(fresh(small_coder), model_dir=small_model_dir, max_body_bytes=100)
    with TestClient(app) as c:
        ok = c.post("/code", json={"items": [{"title": "nurse"}]})
        assert ok.status_code == 200
        assert_error(c.post("/code", json={"items": [{"title": "nurse"}] * 10}), 413)


# ---------------------------------------------------------------- other endpoints
def test_schemes_lists_every_scheme_with_its_state(client):
    body = client.get("/schemes").json()
    assert body["default"] == "soc2000"
    by_name = {s["name"]: s for s in body["schemes"]}
    assert list(by_name) == ["soc2000", "soc90", "soc2010", "soc2020", "isco08"]
    assert by_name["soc2000"]["loaded"] and by_name["soc2000"]["state"] == "loaded"
    assert by_name["soc2000"]["default"] and 0 < by_name["soc2000"]["threshold"] <= 1
    assert by_name["soc2000"]["units"] > 300
    assert not by_name["soc90"]["loaded"] and by_name["soc90"]["state"] == "not_built"
    assert by_name["soc90"]["detail"]


def test_code_info_unit_and_group(client, small_coder):
    body = client.get("/codes/soc2000/3211").json()
    assert body["title"] == small_coder.scheme.title("3211") and body["level"] == "unit"
    assert body["is_unit"] is True
    assert [g["code"] for g in body["hierarchy"]] == ["3", "32", "321", "3211"]
    assert [g["level"] for g in body["hierarchy"]] == ["major", "sub_major", "minor", "unit"]
    group = client.get("/codes/soc2000/32").json()
    assert group["level"] == "sub_major" and not group["is_unit"]
    assert [g["code"] for g in group["hierarchy"]] == ["3", "32"]
    isco = client.get("/codes/ISCO-08/2221").json()  # other schemes need no model
    assert isco["scheme"] == "isco08" and isco["hierarchy"][0]["code"] == "2"
    assert client.get("/codes/soc90/929").json()["level"] == "unit"


@pytest.mark.parametrize("path, kind", [
    ("/codes/soc2000/9999", "unknown_code"),
    ("/codes/soc2000/-9", "unknown_code"),
    ("/codes/soc2000/" + "1" * 300, "unknown_code"),
    ("/codes/soc1066/1111", "unknown_scheme"),
    ("/codes", "not_found"),  # (/codes/soc2000 searches codes by words: tests/test_clerical.py)
    ("/no/such/endpoint", "not_found"),
])
def test_not_found_is_404_json(client, path, kind):
    assert_error(client.get(path), 404, kind)


def test_wrong_method_is_405_json(client):
    assert_error(client.get("/code"), 405, "method_not_allowed")
    assert_error(client.post("/suggest", json={}), 405, "method_not_allowed")


def test_health(client):
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["default_scheme"] == "soc2000"
    assert body["loaded"] == ["soc2000"] and body["version"]


def test_openapi_and_docs(client):
    spec = client.get("/openapi.json").json()
    assert {"/suggest", "/code", "/schemes", "/codes/{scheme}/{code}", "/health"} <= set(spec["paths"])
    assert "requestBody" in spec["paths"]["/code"]["post"]
    r = client.get("/docs")
    assert r.status_code == 200 and "swagger" in r.text.lower()
    if app_module._swagger_assets() is not None:  # served locally: nothing fetched from a CDN
        assert "cdn." not in r.text
        assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_page_is_self_contained(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert 'role="combobox"' in html and 'role="listbox"' in html
    assert '<label for="title">' in html and '<label for="industry">' in html
    assert '<label for="description">' in html
    for field, limit in [("title", MAX_TEXT_CHARS), ("industry", MAX_INDUSTRY_CHARS),
                         ("description", MAX_DESCRIPTION_CHARS)]:  # the page's limits are the API's
        assert re.search(rf'<input id="{field}"[^>]*maxlength="{limit}"', html), field
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the page must not load anything remote"
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "unsafe-inline" not in csp


# ---------------------------------------------------------------- robustness
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=st.text(max_size=220), industry=st.none() | st.text(max_size=220),
       description=st.none() | st.text(max_size=300), k=st.integers(-2, 25))
def test_suggest_never_500(client, q, industry, description, k):
    params = {"q": q, "k": k} | ({} if industry is None else {"industry": industry}) \
        | ({} if description is None else {"description": description})
    r = client.get("/suggest", params=params)
    assert r.status_code in (200, 422), r.text
    if r.status_code == 200:
        assert r.json()["status"] in {"auto", "refer", "uncodable"}


# `GET /suggest` query strings: plain ones, which the short way answers, and near misses it must
# leave to FastAPI (blank or over-long fields, odd k, repeats, aliases, unknown or unbuilt schemes).
_suggest_pairs = st.lists(st.one_of(
    st.tuples(st.just("q"), st.sampled_from(["nurse", "nur", "staff nurse", "caf\u00e9 mgr", " ", "", "x" * 201])
              | st.text(max_size=8)),
    st.tuples(st.sampled_from(["industry", "description"]),
              st.sampled_from(["", " ", "hospital", "x" * 121, "x" * 301]) | st.text(max_size=8)),
    st.tuples(st.just("k"), st.sampled_from(["1", "5", "05", "20", "0", "21", " 5", "5.0", "+5", "x", ""])),
    st.tuples(st.just("scheme"), st.sampled_from(["soc2000", "SOC-2000", "soc90", "nope", ""])),
    st.tuples(st.just("also"), st.sampled_from(["soc2020", "isco08", "soc90", "nope", ""])),
    st.tuples(st.just("other"), st.text(max_size=4)),
), max_size=7)


@contextmanager
def short_way(app, on: bool = True):
    """The app's short way to /suggest watched (yields whether it answered, per request), or
    turned off."""
    short, taken = app.short_suggest, []

    async def watched(scope, receive, send):
        taken.append(await short(scope, receive, send))
        return taken[-1]

    app.short_suggest = watched if on else None
    try:
        yield taken
    finally:
        app.short_suggest = short


@settings(max_examples=150, deadline=None)
@given(pairs=_suggest_pairs)
def test_suggest_short_way_answers_as_fastapi_does(client, pairs):
    from urllib.parse import urlencode

    url = "/suggest?" + urlencode(pairs)
    with short_way(client.app) as taken:
        fast = client.get(url)
    with short_way(client.app, on=False):
        slow = client.get(url)
    assert (fast.status_code, fast.headers["content-type"], fast.content) == \
        (slow.status_code, slow.headers["content-type"], slow.content)
    plain = [k for k, _ in pairs if k != "also" and k != "other"]
    if taken[0]:
        assert fast.status_code == 200 and len(plain) == len(set(plain))


def test_suggest_short_way_takes_plain_queries(client):
    with short_way(client.app) as taken:
        for params in ({"q": "nurse"}, {"q": "nurs", "k": 3, "industry": "", "also": ["soc2020", "isco08"]},
                       {"q": "nurse", "scheme": "soc2000", "description": "wards"},  # plain
                       {"q": " "}, {"q": "nurse", "k": 0}, {"q": "nurse", "scheme": "SOC-2000"}):  # FastAPI's
            assert client.get("/suggest", params=params).status_code in (200, 422)
    assert taken == [True, True, True, False, False, False]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["items", "title", "industry", "description", "k", "scheme", "x"]), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values)
def test_code_never_500(client, body):
    r = client.post("/code", content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code in (200, 422), r.text


@pytest.mark.parametrize("executor", ["inline", "thread"])
def test_concurrent_requests_match_direct_coding(small_coder, small_model_dir, executor):
    titles = ["nurse", "store mgr", "snr software dev", "care asst", "teacher", "hgv driver",
              "dont know", "pub landlord", "cleaner", "accounts clerk"] * 5
    app = create_app(fresh(small_coder), model_dir=small_model_dir, executor=executor)

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            suggests = [c.get("/suggest", params={"q": t}) for t in titles]
            batch = c.post("/code", json={"items": [{"title": t} for t in titles]})
            return await asyncio.gather(*suggests, batch)

    *responses, batch = asyncio.run(run())
    app.state.engine.close()
    assert all(r.status_code == 200 for r in responses) and batch.status_code == 200
    for title, r, b in zip(titles, responses, batch.json()["results"]):
        expected = [c.code for c in small_coder.code(title).candidates]
        assert [c["code"] for c in r.json()["candidates"]] == expected
        assert [c["code"] for c in b["candidates"]] == expected


def test_bad_executor_is_refused(small_coder):
    with pytest.raises(ValueError, match="executor"):
        create_app(fresh(small_coder), executor="processes")  # type: ignore[arg-type]


# ---------------------------------------------------------------- loading models
def test_model_dir_app_loads_default_at_startup(small_model_dir):
    app = create_app(small_model_dir, build=False)
    with TestClient(app) as c:
        assert c.get("/health").json()["loaded"] == ["soc2000"]
        assert c.get("/suggest", params={"q": "nurse"}).status_code == 200


def test_startup_fails_when_model_missing_and_build_off(tmp_path):
    with pytest.raises(ModelError, match="coder build"):
        with TestClient(create_app(tmp_path, build=False)):
            pass


def test_registry_loads_a_built_scheme_on_first_request(small_model_dir):
    registry = Registry("soc2000", model_dir=small_model_dir)

    async def run():
        before = {s["name"]: s["state"] for s in await registry.describe()}
        coders = await asyncio.gather(*(registry.get("soc2000") for _ in range(3)))
        after = {s["name"]: s["state"] for s in await registry.describe()}
        return before, coders, after

    before, coders, after = asyncio.run(run())
    assert before["soc2000"] == "available" and after["soc2000"] == "loaded"
    assert coders[0] is coders[1] is coders[2]  # loaded once, shared by the waiting requests
    assert registry.loaded == ["soc2000"]


def test_build_missing_builds_in_the_background(small_coder, small_model_dir, monkeypatch):
    release = threading.Event()
    calls = []

    def fake_load(scheme, *, model_dir=None, build=True, **kwargs):
        calls.append((scheme, build))
        assert release.wait(30)
        return fresh(small_coder)

    app = create_app(fresh(small_coder), model_dir=small_model_dir, build_missing=True)
    with TestClient(app) as c:
        monkeypatch.setattr(Coder, "load", fake_load)
        r = c.get("/suggest", params={"q": "nurse", "scheme": "soc90"})
        body = assert_error(r, 503, "model_unavailable")
        assert "being built" in body["detail"] and int(r.headers["retry-after"]) > 0
        assert_error(c.get("/suggest", params={"q": "nurse", "scheme": "soc90"}), 503)
        states = {s["name"]: s["state"] for s in c.get("/schemes").json()["schemes"]}
        assert states["soc90"] == "building"
        release.set()
        for _ in range(100):
            if c.get("/suggest", params={"q": "nurse", "scheme": "soc90"}).status_code == 200:
                break
            threading.Event().wait(0.05)
        else:
            pytest.fail("the background build never finished")
        assert calls == [("soc90", True)]  # one build, however many requests
        assert "soc90" in c.get("/health").json()["loaded"]


def test_failed_load_is_503_and_retried(small_coder, small_model_dir, monkeypatch):
    attempts = []

    def broken(scheme, *, model_dir=None, build=True, **kwargs):
        attempts.append(scheme)
        raise ModelError(f"{scheme} model file is truncated; run `coder build --scheme {scheme}`")

    app = create_app(fresh(small_coder), model_dir=small_model_dir, build_missing=True)
    with TestClient(app) as c:
        monkeypatch.setattr(Coder, "load", broken)
        assert_error(c.get("/suggest", params={"q": "nurse", "scheme": "isco08"}), 503)
        for _ in range(100):
            states = {s["name"]: s for s in c.get("/schemes").json()["schemes"]}
            if states["isco08"]["state"] == "failed":
                break
            threading.Event().wait(0.05)
        assert "truncated" in states["isco08"]["detail"]
        assert_error(c.get("/suggest", params={"q": "nurse", "scheme": "isco08"}), 503)
        for _ in range(100):  # a failure is not sticky: the next request tries again
            if len(attempts) == 2:
                break
            threading.Event().wait(0.05)
        assert attempts == ["isco08", "isco08"]
