"""podgate's id_token verification against a real provider's discovery and keys.

The provider (npm's oidc-provider) serves its real discovery document and
JWKS; the tokens are forged here with joserfc, with the provider's own
signing key where the signature must hold and only a claim is wrong, so each
test shows one rule of OpenID Connect Core 3.1.3.7 refusing one defect.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey
from provider_kit import CLIENT_ID, CLIENT_SECRET, TestProvider, new_key, start_provider, user

from control.auth.oidc_client import OidcClient
from control.auth.sign_in_errors import SignInFailed

NONCE = "nonce-of-this-attempt"


@pytest.fixture
async def provider(tmp_path: Path) -> AsyncIterator[TestProvider]:
    started = await start_provider(
        tmp_path / "provider",
        redirect_uris=["http://127.0.0.1:9/hub/oauth_callback"],
        users={"ada": user("ada")},
    )
    try:
        yield started
    finally:
        await started.stop()


def claims(provider: TestProvider, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": provider.issuer,
        "sub": "ada",
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 300,
        "nonce": NONCE,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def client(provider: TestProvider) -> OidcClient:
    return OidcClient(provider.issuer, CLIENT_ID, CLIENT_SECRET, timeout=5.0)


async def refused(provider: TestProvider, token: str, nonce: str | None = NONCE) -> SignInFailed:
    with pytest.raises(SignInFailed) as caught:
        await client(provider).verify_id_token(token, nonce=nonce)
    assert caught.value.reason.startswith("token"), caught.value.reason
    assert "could not be verified" in caught.value.message
    return caught.value


async def test_a_well_made_token_is_accepted(provider: TestProvider) -> None:
    verified = await client(provider).verify_id_token(provider.forge(claims(provider)), nonce=NONCE)
    assert verified["sub"] == "ada"


async def test_another_issuer_is_refused(provider: TestProvider) -> None:
    token = provider.forge(claims(provider, iss="http://127.0.0.1:1"))
    assert "iss" in (await refused(provider, token)).reason


async def test_another_audience_is_refused(provider: TestProvider) -> None:
    token = provider.forge(claims(provider, aud="some-other-client"))
    assert "aud" in (await refused(provider, token)).reason


async def test_another_nonce_is_refused(provider: TestProvider) -> None:
    token = provider.forge(claims(provider, nonce="the-attackers-nonce"))
    assert "nonce" in (await refused(provider, token)).reason
    missing = provider.forge(claims(provider, nonce=None))
    assert "nonce" in (await refused(provider, missing)).reason


async def test_a_signature_by_another_key_is_refused(provider: TestProvider) -> None:
    # Same kid as the provider's key, another private key: the signature cannot hold.
    impostor = new_key(provider.keys[0].kid or "key-1")
    token = provider.forge(claims(provider), key=impostor)
    await refused(provider, token)


async def test_alg_none_is_refused(provider: TestProvider) -> None:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    unsigned = f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims(provider))}."
    await refused(provider, unsigned)


async def test_an_hmac_token_made_with_the_client_secret_is_refused(
    provider: TestProvider,
) -> None:
    # The client secret is no signing key of the provider's: HS256 is never accepted.
    key = OctKey.import_key(CLIENT_SECRET.encode())
    token = jwt.encode({"alg": "HS256"}, claims(provider), key)
    await refused(provider, token)


async def test_an_expired_token_is_refused_and_a_little_skew_is_allowed(
    provider: TestProvider,
) -> None:
    now = int(time.time())
    expired = provider.forge(claims(provider, iat=now - 7200, exp=now - 3600))
    assert "exp" in (await refused(provider, expired)).reason
    # Thirty seconds past exp: within the allowed clock skew (60 s).
    skewed = provider.forge(claims(provider, iat=now - 300, exp=now - 30))
    verified = await client(provider).verify_id_token(skewed, nonce=NONCE)
    assert verified["sub"] == "ada"


async def test_a_rotated_in_key_is_fetched_once(provider: TestProvider) -> None:
    verifier = client(provider)
    await verifier.verify_id_token(provider.forge(claims(provider)), nonce=NONCE)  # keys cached
    rotated = new_key("key-2")
    await provider.restart(keys=[rotated, *provider.keys])
    token = provider.forge(claims(provider), key=rotated)
    verified = await verifier.verify_id_token(token, nonce=NONCE)
    assert verified["sub"] == "ada"
    # A kid the provider does not have even after looking again: refused.
    stranger = provider.forge(claims(provider), key=new_key("key-unknown"))
    await refused(provider, stranger)
