"""Every test runs with known API keys in the environment (pdfleet/apikeys.py reads them there, as on an
operator's machine): the roles that write them to hosts can run, and tests/test_apikeys.py searches every output
of pdfleet for these strings."""

from __future__ import annotations

import pytest

# One key, as smg 1.13.0 needs: the client's key is what the engines receive (docs/security.md).
TEST_KEY = "pdfleet-test-api-key-5f3c9a1e7b2d4680"


@pytest.fixture(autouse=True)
def api_keys_in_environment(monkeypatch):
    monkeypatch.setenv("PDFLEET_CLIENT_KEYS", TEST_KEY)
    monkeypatch.setenv("PDFLEET_ENGINE_KEY", TEST_KEY)
