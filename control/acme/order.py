"""One certificate order with the `acme` library (certbot's), validated over HTTP-01.

The library is synchronous (requests), so `order_certificate` runs in a daemon
thread (control.acme.manager.in_daemon_thread), never on the event loop. The
challenge answers need no hand-off to the edge: they are the token and the
account key's thumbprint (edge.tls.redirect answers any token that way).

Every failure is an `OrderFailed` with one line saying what went wrong (the
CA's own problem detail when it sent one).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import josepy as jose
from acme import challenges, client, crypto_util, errors, messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

USER_AGENT = "podgate"
DEADLINE_SECONDS = 90.0  # for the CA to validate and issue


class OrderFailed(Exception):
    """The order did not end with a certificate; the message is one line for the log."""


@dataclass(frozen=True)
class Issued:
    cert_pem: bytes  # the full chain
    key_pem: bytes
    account_uri: str


def order_certificate(
    directory_url: str,
    account_key: jose.JWKRSA,
    account_uri: str,
    email: str | None,
    domains: tuple[str, ...],
    ca_file: str | None,
) -> Issued:
    """Register (or find) the account, order for `domains`, answer HTTP-01, download the chain."""
    try:
        return _order(directory_url, account_key, account_uri, email, domains, ca_file)
    except OrderFailed:
        raise
    except errors.ValidationError as e:
        raise OrderFailed(f"the CA could not validate the challenge: {_failed_detail(e)}") from e
    except messages.Error as e:
        raise OrderFailed(f"the CA refused: {e.detail or e.typ}") from e
    except errors.TimeoutError as e:
        raise OrderFailed(f"the CA did not finish within {DEADLINE_SECONDS:g} s") from e
    except Exception as e:  # network errors (requests), unexpected answers
        raise OrderFailed(f"{type(e).__name__}: {e}") from e


def _order(
    directory_url: str,
    account_key: jose.JWKRSA,
    account_uri: str,
    email: str | None,
    domains: tuple[str, ...],
    ca_file: str | None,
) -> Issued:
    net = client.ClientNetwork(account_key, user_agent=USER_AGENT, verify_ssl=ca_file or True)
    try:
        directory = client.ClientV2.get_directory(directory_url, net)
        acme = client.ClientV2(directory, net=net)
        if not account_uri:
            registration = messages.NewRegistration.from_data(
                email=email, terms_of_service_agreed=True
            )
            try:
                account_uri = acme.new_account(registration).uri
            except errors.ConflictError as e:  # this key has an account already: use it
                account_uri = e.location
        # Requests are signed with the account's URL (its "kid") from here on.
        net.account = messages.RegistrationResource(uri=account_uri, body=messages.Registration())
        key = ec.generate_private_key(ec.SECP256R1())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        order = acme.new_order(crypto_util.make_csr(key_pem, list(domains)))
        for authorization in order.authorizations:
            if authorization.body.status == messages.STATUS_VALID:
                continue  # validated recently for this account
            found = [
                c for c in authorization.body.challenges if isinstance(c.chall, challenges.HTTP01)
            ]
            if not found:
                name = authorization.body.identifier.value
                raise OrderFailed(f"the CA offers no HTTP-01 challenge for {name}")
            acme.answer_challenge(found[0], found[0].chall.response(account_key))
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=DEADLINE_SECONDS)
        done = acme.poll_and_finalize(order, deadline)
        return Issued(done.fullchain_pem.encode(), key_pem, account_uri)
    finally:
        net.session.close()


def _failed_detail(error: errors.ValidationError) -> str:
    details = []
    for authorization in error.failed_authzrs:
        for challenge in authorization.body.challenges:
            if challenge.error is not None:
                name = authorization.body.identifier.value
                details.append(f"{name}: {challenge.error.detail or challenge.error.typ}")
    return "; ".join(details) or "no detail given"
