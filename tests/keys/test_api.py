import pytest
from rest_framework.test import APIClient

from apps.keys.services import key_create


@pytest.mark.django_db
def test_alice_manages_her_keys_with_her_own_key(alice):
    _, plaintext = key_create(user=alice, name="admin-key", scopes=["chat", "keys:manage"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    created = api.post("/api/v1/keys/", {"name": "backend", "allowed_models": ["gigachat/*"]}, format="json")
    assert created.status_code == 201
    assert created.json()["key"].startswith("xr-")
    listed = api.get("/api/v1/keys/").json()["results"]
    assert {k["name"] for k in listed} >= {"admin-key", "backend"}
    assert all("key" not in k and "hashed_key" not in k for k in listed)
    revoked = api.post(f"/api/v1/keys/{created.json()['id']}/revoke/")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]


@pytest.mark.django_db
def test_charlie_cannot_see_or_revoke_alices_keys(alice, charlie):
    alice_key, _ = key_create(user=alice, name="alice-key")
    _, charlie_plain = key_create(user=charlie, name="charlie-key", scopes=["keys:manage"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {charlie_plain}")
    assert alice_key.id not in {k["id"] for k in api.get("/api/v1/keys/").json()["results"]}
    assert api.get(f"/api/v1/keys/{alice_key.id}/").status_code == 404
    response = api.post(f"/api/v1/keys/{alice_key.id}/revoke/")
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.django_db
def test_the_management_api_refuses_anonymous_callers_in_the_openai_envelope():
    response = APIClient().get("/api/v1/keys/")
    assert response.status_code in (401, 403)
    assert "message" in response.json()["error"]


@pytest.mark.django_db
def test_the_openapi_schema_describes_v1_beside_the_management_api(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path in ("/v1/chat/completions", "/v1/embeddings", "/v1/models", "/api/v1/keys/"):
        assert path in schema["paths"], path
    assert "ChatCompletionRequest" in str(schema["components"]["schemas"])
