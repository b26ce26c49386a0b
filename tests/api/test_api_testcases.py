"""Test cases over REST: create, read, list, update, delete and bulk delete."""

from __future__ import annotations

import httpx

API = "/api/v1/organizations/acme/environments/dev"


async def _create(client: httpx.AsyncClient, admin: dict[str, str], name: str) -> str:
    body = {"name": name, "steps": [{"action": "open the page", "expected": "it loads"}], "labels": {"area": "ui"}}
    response = await client.post(f"{API}/test-cases", json=body, headers=admin)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"{API}/test-cases/{response.json()['id']}"
    return str(response.json()["id"])


async def test_a_test_case_is_created_read_updated_and_deleted(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    case_id = await _create(client, admin, "login works")

    fetched = await client.get(f"{API}/test-cases/{case_id}", headers=admin)
    updated = await client.patch(f"{API}/test-cases/{case_id}", json={"priority": "critical"}, headers=admin)
    deleted = await client.delete(f"{API}/test-cases/{case_id}", headers=admin)
    gone = await client.get(f"{API}/test-cases/{case_id}", headers=admin)

    assert fetched.json()["steps"] == [{"action": "open the page", "expected": "it loads"}]
    assert updated.json()["priority"] == "critical"
    # A field left out of the PATCH stays as it was.
    assert updated.json()["labels"] == {"area": "ui"}
    assert deleted.json()["deleted"] is True
    assert gone.status_code == 404


async def test_test_cases_are_listed_and_bulk_deleted(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    ids = [await _create(client, admin, f"case {n}") for n in range(3)]

    listed = await client.get(f"{API}/test-cases", params={"selector": "area=ui", "limit": 2}, headers=admin)
    removed = await client.post(f"{API}/test-cases/bulk-delete", json={"ids": ids[:2]}, headers=admin)
    left = await client.get(f"{API}/test-cases", headers=admin)

    assert len(listed.json()["test_cases"]) == 2
    assert listed.json()["next_cursor"] is not None
    assert removed.json() == {"deleted": True, "message": "deleted 2 test case(s)"}
    assert [c["id"] for c in left.json()["test_cases"]] == [ids[2]]


async def test_a_test_case_name_is_unique_and_required(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    await _create(client, admin, "login works")

    duplicate = await client.post(f"{API}/test-cases", json={"name": "login works"}, headers=admin)
    nameless = await client.post(f"{API}/test-cases", json={"description": "?"}, headers=admin)
    unknown = await client.post(f"{API}/test-cases/bulk-delete", json={"ids": ["nope"]}, headers=admin)

    assert duplicate.status_code == 409
    assert nameless.status_code == 422
    assert [e["path"] for e in nameless.json()["errors"]] == ["name"]
    assert unknown.status_code == 404


async def test_a_patch_clears_with_empty_values_and_leaves_null_alone(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    # An automated-test mapping could not be removed at all: null was ignored and "" stored as "". Null stays
    # "unchanged": agents in strict-schema modes send every optional field, as null.
    body = {"name": "checkout", "automated_test": "shop.pay", "workflow_name": "nightly", "labels": {"k": "v"}}
    case = (await client.post(f"{API}/test-cases", json=body, headers=admin)).json()
    url = f"{API}/test-cases/{case['id']}"

    untouched = await client.patch(url, json={"automated_test": None, "labels": None, "name": None}, headers=admin)
    cleared = await client.patch(url, json={"automated_test": "", "labels": {}, "workflow_name": "  "}, headers=admin)
    spaces = await client.post(f"{API}/test-cases", json={"name": "   "}, headers=admin)
    padded = await client.patch(
        url, json={"automated_test": "  shop.refund  ", "workflow_name": " nightly "}, headers=admin
    )

    assert untouched.status_code == 200, untouched.text
    kept = untouched.json()
    assert (kept["name"], kept["automated_test"], kept["labels"]) == ("checkout", "shop.pay", {"k": "v"})
    assert cleared.status_code == 200, cleared.text
    gone = cleared.json()
    assert (gone["automated_test"], gone["workflow_name"], gone["labels"]) == (None, None, {})
    assert spaces.status_code == 422
    assert "not only spaces" in spaces.text
    assert (padded.json()["automated_test"], padded.json()["workflow_name"]) == ("shop.refund", "nightly")
