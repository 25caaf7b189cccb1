"""The OpenAPI document declares the errors the API really answers: 401/403 where a token is
needed, 413/422 where there is a body, 422 where there are parameters, 503 where the store is
used, all as ``application/problem+json`` with one ``Problem`` schema; and what the server sends
for each of them matches the declaration."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.deps import get_store
from redline.auth import create_token
from redline.config import Settings
from redline.errors import StoreError
from redline.store import open_store

from .conftest import assert_problem

PROBLEM = "application/problem+json"
REF = {"$ref": "#/components/schemas/Problem"}
PUBLIC = {("get", "/health"), ("get", "/ready"), ("get", "/"), ("get", "/conformance")}
NO_STORE = {("get", "/health"), ("get", "/"), ("get", "/conformance")}


@pytest.fixture(scope="module")
def light(tmp_path_factory):
    """An app on an empty SQLite store (no scenario needed), a small body limit, two tokens."""
    root = tmp_path_factory.mktemp("docs")
    url = f"sqlite:///{root / 'store.db'}"
    store = open_store(url)
    tokens = {role: create_token(store, role, role) for role in ("viewer", "admin")}
    store.close()
    settings = Settings(database_url=url, data_dir=root, evidence_dir=root / "evidence", max_body_bytes=4096)
    app = create_app(settings)
    with TestClient(app) as client:
        yield {"app": app, "client": client, "tokens": tokens, "doc": app.openapi()}


def _operations(doc):
    return [
        (m, p, op)
        for p, ops in doc["paths"].items()
        for m, op in ops.items()
        if m in ("get", "post", "put", "patch", "delete")
    ]


def test_problem_schema(light):
    problem = light["doc"]["components"]["schemas"]["Problem"]
    assert problem["type"] == "object"
    assert set(problem["required"]) == {"type", "title", "status"}
    assert problem["properties"]["status"]["type"] == "integer"
    assert "HTTPValidationError" not in json.dumps(light["doc"])  # FastAPI's 422 body is not what we send


def test_every_operation_declares_its_errors(light):
    ops = _operations(light["doc"])
    assert len(ops) >= 20
    for method, path, op in ops:
        responses = op["responses"]
        expected = set()
        if (method, path) not in PUBLIC:
            assert op.get("security"), f"{method} {path} needs a token but the document does not say so"
            expected |= {"401", "403"}
        else:
            assert not op.get("security") and "401" not in responses, (method, path)
        if "requestBody" in op:
            expected |= {"413", "422"}
        if op.get("parameters"):
            expected.add("422")
        if (method, path) not in NO_STORE:
            expected.add("503")
        missing = expected - set(responses)
        assert not missing, f"{method.upper()} {path} does not declare {sorted(missing)}"
        for status, response in responses.items():
            if status[0] in "45":
                assert response["content"] == {PROBLEM: {"schema": REF}}, (method, path, status)
                assert response["description"]


def test_every_protected_route_of_the_access_matrix_is_documented(light):
    from .test_access import PROTECTED

    doc = light["doc"]
    for row in PROTECTED:
        responses = doc["paths"][row.path][row.method.lower()]["responses"]
        assert {"401", "403"} <= set(responses), row.id


def test_document_is_stable_and_served(light):
    served = light["client"].get("/openapi.json").json()
    assert served == json.loads(json.dumps(light["app"].openapi()))
    assert light["app"].openapi() is light["app"].openapi()  # built once, cached


def _matches_problem(doc, response, status, method, path):
    """What the server sent is the declared problem: status declared for the operation,
    content type problem+json, body with the schema's required members and types."""
    assert_problem(response, status)
    declared = doc["paths"][path][method]["responses"]
    assert str(status) in declared and PROBLEM in declared[str(status)]["content"]
    body = response.json()
    schema = doc["components"]["schemas"]["Problem"]
    assert set(schema["required"]) <= set(body)
    types = {"string": str, "integer": int, "array": list}
    for key, value in body.items():
        if key in schema["properties"]:
            assert isinstance(value, types[schema["properties"][key]["type"]]), (key, value)


def test_real_errors_match_the_document(light):
    doc, client, tokens = light["doc"], light["client"], light["tokens"]
    viewer, admin = ({"Authorization": f"Bearer {tokens[r]}"} for r in ("viewer", "admin"))
    region = {"type": "Polygon", "coordinates": [[[108.6, 39.8], [108.7, 39.8], [108.7, 39.9], [108.6, 39.8]]]}
    _matches_problem(doc, client.get("/collections"), 401, "get", "/collections")
    _matches_problem(
        doc, client.patch("/flags/1", json={"status": "dispatched"}, headers=viewer), 403, "patch", "/flags/{flag_id}"
    )
    big = {"type": "Polygon", "coordinates": [[[108.6, 39.8]] * 2000]}
    _matches_problem(doc, client.post("/checks", json=big, headers=viewer), 413, "post", "/checks")
    _matches_problem(
        doc,
        client.post("/screenings", json={"footprint": big, "activity": "mining"}, headers=viewer),
        413,
        "post",
        "/screenings",
    )
    _matches_problem(
        doc,
        client.post("/flags/1/evidence", headers=admin, files={"file": ("a.jpg", b"\xff" * 9000)}),
        413,
        "post",
        "/flags/{flag_id}/evidence",
    )
    r = client.get("/stats?group_by=nonsense", headers=viewer)
    _matches_problem(doc, r, 422, "get", "/stats")
    assert r.json()["errors"][0]["loc"] == ["query", "group_by"]
    _matches_problem(
        doc, client.post("/screenings", json={"footprint": region}, headers=viewer), 422, "post", "/screenings"
    )
    _matches_problem(doc, client.get("/flags/1", headers=viewer), 404, "get", "/flags/{flag_id}")


class _DownStore:
    """A store whose every call fails as an unreachable database does."""

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise StoreError("the store is unavailable")

        return fail


def test_store_down_is_a_declared_503(light):
    app, doc = light["app"], light["doc"]

    def down():
        yield _DownStore()

    app.dependency_overrides[get_store] = down
    try:
        client = light["client"]
        _matches_problem(doc, client.get("/ready"), 503, "get", "/ready")
        _matches_problem(
            doc, client.get("/collections", headers={"Authorization": "Bearer rl_x"}), 503, "get", "/collections"
        )
        assert client.get("/health").status_code == 200  # liveness does not need the store
    finally:
        app.dependency_overrides.pop(get_store, None)
