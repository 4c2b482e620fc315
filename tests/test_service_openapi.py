"""The JSON API checked against its own OpenAPI document with schemathesis.

Schemathesis reads ``/openapi.json`` and makes requests for every operation from it: valid
ones (positive) and ones that break the document (negative: wrong types, missing or extra
fields, out-of-range numbers, over-long or blank text, unknown schemes). Each response goes
through schemathesis' default checks: a status the document lists for that operation; the
content type and body the document gives for that status, so every error is the documented
``ErrorOut``; documented headers; invalid requests refused with a 4xx; valid ones accepted;
and no 5xx, except the one the API means and documents: 503 for a scheme whose model is not
built (only soc2000 is built here).

Bounded: the small model, `MAX_EXAMPLES` requests per operation and mode, the same requests
on every run (derandomised), about 25 s in all (the decision and queue endpoints included).
The operations are listed here and the list is checked against the document, so a new
endpoint cannot go untested. The app has a decision store of its own; the one kind of 422 a
schema cannot rule out (a code the scheme lacks, an uncodable title, an unreadable file) is
allowed for schema-valid requests (`SEMANTIC_422`).

Schemathesis' own pytest integration (``schema.parametrize``) is not used: in schemathesis
4.32 it fails under pytest 9 ('Function' object has no attribute '_nodeid'). Cases are drawn
with hypothesis from ``operation.as_strategy`` and checked with ``case.call_and_validate``,
as that integration does.
"""

from __future__ import annotations

import copy

import pytest

pytest.importorskip("fastapi", reason="the service needs the 'serve' extra (fastapi, uvicorn)")
schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (test extra) is not installed")

from fastapi.responses import JSONResponse  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.errors import FailureGroup  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from coder import Coder  # noqa: E402
from coder.decisions import DecisionStore  # noqa: E402
from coder.schemes import load_scheme  # noqa: E402
from coder.service import app as app_module  # noqa: E402
from coder.service.app import create_app  # noqa: E402

MAX_EXAMPLES = 30  # per operation and mode

OPERATIONS = [
    ("GET", "/suggest"),
    ("POST", "/code"),
    ("GET", "/codes/{scheme}/{code}"),
    ("GET", "/codes/{scheme}"),
    ("GET", "/schemes"),
    ("GET", "/health"),
    ("POST", "/decisions"),
    ("GET", "/decisions"),
    ("DELETE", "/decisions/{decision_id}"),
    ("GET", "/queues"),
    ("POST", "/queues"),
    ("GET", "/queues/{queue_id}"),
    ("POST", "/queues/{queue_id}/next"),
    ("POST", "/queues/{queue_id}/items/{item}/decide"),
    ("POST", "/queues/{queue_id}/items/{item}/skip"),
    ("POST", "/queues/{queue_id}/items/{item}/undo"),
    ("GET", "/queues/{queue_id}/export"),
]
# The others have nothing to get wrong.
TAKES_INPUT = {path for _, path in OPERATIONS} - {"/schemes", "/health", "/queues"} | {"POST /queues"}
BUILT = "soc2000"  # the only model in small_model_dir


@pytest.fixture(scope="module")
def api_schema(small_coder, small_model_dir, tmp_path_factory):
    # A coder of its own (the engine cache is not thread-safe and the app codes on its own
    # thread), on its own copy of the model (decisions change what it learned), with a store.
    store = DecisionStore(tmp_path_factory.mktemp("openapi") / "decisions.sqlite")
    app = create_app(Coder(copy.deepcopy(small_coder.model), threshold=small_coder.threshold, decisions=store),
                     model_dir=small_model_dir)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    app.state.engine.close()


def no_server_error(ctx, response, case) -> None:
    """Schemathesis' not_a_server_error, less the one 5xx the API means: 503 for a scheme
    whose model is not built (documented, with the command that builds it)."""
    if response.status_code < 500:
        return
    asked = (case.query or {}).get("scheme")
    if isinstance(case.body, dict):
        asked = case.body.get("scheme", asked)
    if response.status_code == 503 and asked is not None:
        body = response.json()
        if body.get("error") == "model_unavailable" and load_scheme(asked).name != BUILT:
            return  # its shape is checked against ErrorOut like any other error
    raise AssertionError(f"{response.status_code} from {case.method} {case.formatted_path}: "
                         f"{response.text[:500]}")


# What the document cannot say: a code the scheme lacks, a title the coder cannot read, a
# file that is not a referral file. Such requests fit the schema and get 422 with these kinds.
SEMANTIC_422 = {"unknown_code", "uncodable_answer", "unreadable_queue"}


def positive_data_accepted(ctx, response, case) -> None:
    """Schemathesis' positive_data_acceptance, less the 422s only the server can judge (above)."""
    if response.status_code == 422 and case.meta is not None and case.meta.generation.mode.is_positive:
        if response.json().get("error") in SEMANTIC_422:
            return
    positive_data_acceptance(ctx, response, case)


CHECKS = {"excluded_checks": [not_a_server_error, positive_data_acceptance],
          "additional_checks": [no_server_error, positive_data_accepted]}


def test_every_operation_is_checked(api_schema):
    documented = {(method.upper(), path) for path, ops in api_schema.raw_schema["paths"].items()
                  for method in ops}
    assert documented == set(OPERATIONS)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("method, path", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_honours_the_document(api_schema, method, path, mode):
    if mode is GenerationMode.NEGATIVE and path not in TAKES_INPUT and f"{method} {path}" not in TAKES_INPUT:
        pytest.skip(f"{method} {path} takes no input: no invalid request to make")
    operation = api_schema[path][method]
    statuses: list[int] = []

    # derandomize: the same requests on every run, so a failure is a change, not a draw.
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case):
        response = case.call_and_validate(**CHECKS)
        statuses.append(response.status_code)

    check()
    assert statuses, "no request was made"


@pytest.mark.parametrize("query", [{"q": "nurse", "k": 0}, {"q": "nurse", "scheme": "soc90"}], ids=["422", "503"])
def test_a_wrong_error_shape_would_be_caught(api_schema, monkeypatch, query):
    """The checks are not vacuous: an error body without its documented detail fails them."""
    operation = api_schema["/suggest"]["GET"]
    checks = {"excluded_checks": [not_a_server_error], "additional_checks": [no_server_error]}
    operation.Case(query=query).call_and_validate(**checks)  # as documented: passes
    monkeypatch.setattr(app_module, "_error", lambda status, kind, detail, errors=None, headers=None:
                        JSONResponse({"error": kind}, status_code=status, headers=headers))
    with pytest.raises(FailureGroup) as failed:
        operation.Case(query=query).call_and_validate(**checks)
    assert "Response violates schema" in str(failed.value)
