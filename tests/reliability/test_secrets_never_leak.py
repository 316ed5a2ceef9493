"""Logs and error bodies never carry a private key, a token, the master key or a full card code.

The service runs as its own process at DEBUG level; the test drives successes and every kind of failure,
then greps everything the process logged and every error body it answered.
"""

from __future__ import annotations

import base64
from pathlib import Path

import asyncpg
import httpx

from giftcards.core.sealing import Keyring
from giftcards.value import codes
from tests.reliability.load import server_env
from tests.support.api import ADMIN_TOKEN, MASTER_KEY, admin_headers
from tests.support.servers import ServerProcess


async def test_no_secret_reaches_a_log_line_or_an_error_body(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    log_path = tmp_path / "server.log"
    server = ServerProcess(server_env(database_url, GIFTCARDS_LOG_LEVEL="DEBUG"), log_path=log_path).start()
    secrets: list[str] = [
        ADMIN_TOKEN,
        base64.urlsafe_b64encode(MASTER_KEY).decode().rstrip("="),
        MASTER_KEY.hex(),
    ]
    error_bodies: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

            async def call(method: str, path: str, **kwargs: object) -> httpx.Response:
                response = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
                if response.status_code >= 400:
                    error_bodies.append(response.text)
                return response

            merchant = (
                await call("POST", "/v1/merchants", json={"name": "Leak"}, headers=admin_headers())
            ).json()
            key = merchant["api_key"]["secret"]
            secrets.append(key)
            auth = {"Authorization": f"Bearer {key}"}
            created = (await call("POST", "/v1/api_keys", json={"label": "b"}, headers=auth)).json()
            second = created["secret"]
            secrets.append(second)
            await call("POST", f"/v1/api_keys/{created['id']}/revoke", headers=auth)
            for amount in (100, 5_000):
                card = (await call("POST", "/v1/cards", json={"amount": amount}, headers=auth)).json()
                code = card["code"]
                secrets += [code, codes.normalize_code(code)]
                payload = (await call("GET", f"/v1/cards/{card['id']}/qr", headers=auth)).json()["payload"]
                await call("POST", "/v1/redemptions", json={"code": code, "amount": 50}, headers=auth)
                await call("POST", "/v1/redemptions", json={"code": code, "amount": 999_999}, headers=auth)
                await call(
                    "POST", "/v1/redemptions", json={"code": code[:-1] + "2", "amount": 1}, headers=auth
                )
                await call("POST", "/v1/redemptions", json={"qr_payload": payload, "amount": 1}, headers=auth)
                await call(
                    "POST",
                    "/v1/redemptions",
                    json={"qr_payload": payload[:-2] + "AA", "amount": 1},
                    headers=auth,
                )
                await call("POST", "/v1/cards/lookup", json={"code": code.lower()}, headers=auth)
                await call(
                    "POST",
                    f"/v1/cards/{card['id']}/adjust",
                    json={"amount": -(10**9), "reason": code},
                    headers=auth,
                )
            await call("GET", "/v1/cards", headers={"Authorization": f"Bearer {second}"})  # revoked key
            await call("GET", "/v1/cards", headers={"Authorization": f"Bearer {key[:-3]}xyz"})
            await call("GET", "/v1/qr_keys", headers={"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"})
            await call("POST", "/v1/cards", content=b'{"amount": ' + key.encode() + b"}", headers=auth)
            await call("POST", "/v1/cards", json={"amount": 1, "campaign": key}, headers=auth)
    finally:
        assert server.terminate() == 0
    keyring = Keyring(MASTER_KEY)
    for row in await db.fetch("SELECT kid, private_key_sealed FROM signing_keys"):
        private = keyring.box.open(
            bytes(row["private_key_sealed"]), context=b"signing-key:" + row["kid"].encode()
        )
        secrets += [private.hex(), base64.urlsafe_b64encode(private).decode().rstrip("=")]
    logged = log_path.read_text()
    assert "giftcards.access" in logged and len(error_bodies) >= 10
    for secret in secrets:
        assert secret not in logged, f"a secret ({secret[:6]}…) is in the log"
        for body in error_bodies:
            assert secret not in body, f"a secret ({secret[:6]}…) is in an error body: {body[:200]}"
