"""The shipped configurations match GigaChat's limits: an individual's account (scope
GIGACHAT_API_PERS) runs one request at a time (gigachat.md §9), so its credentials say so."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def gigachat_credentials(config: dict):
    for name, provider in (config.get("providers") or {}).items():
        if provider.get("kind") != "gigachat":
            continue
        credentials = provider.get("credentials")
        if isinstance(credentials, dict):  # the shorthand form: the limit sits on the provider
            yield name, credentials, provider.get("max_concurrency", 0)
        else:
            for credential in credentials or ():
                yield name, credential.get("secrets") or {}, credential.get("max_concurrency", 0)


def test_the_example_gives_a_personal_gigachat_credential_one_request_at_a_time():
    text = (ROOT / "config/production.example.yaml").read_text()
    found = list(gigachat_credentials(yaml.safe_load(text)))
    assert found
    for name, secrets, limit in found:
        if secrets.get("scope", "GIGACHAT_API_PERS") == "GIGACHAT_API_PERS":
            assert limit == 1, f"{name} is an individual's account, which runs one request at a time"
    assert "ONE request at a time" in text


@pytest.mark.parametrize("path", ["config/demo.yaml", "README.md"])
def test_the_demo_and_the_readme_say_so(path):
    # The demo's emulator takes parallel requests (the gateway tests rely on it), so the demo
    # keeps no cap and says what a real personal key needs.
    assert "ONE request at a time" in (ROOT / path).read_text()
