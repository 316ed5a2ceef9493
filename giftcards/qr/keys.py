"""The QR signing keys in the database, and the in-process KeySet built from them.

Private keys are stored sealed (AES-GCM under a key derived from the master key, bound to the kid).
Each process reloads the set at most every few seconds, and at once when a payload names a kid it has
not seen yet, so a rotation or retirement made by another process takes effect everywhere quickly.
"""

from __future__ import annotations

import time

import asyncpg

from giftcards.core.errors import DomainError
from giftcards.core.isotime import iso
from giftcards.core.sealing import Keyring
from giftcards.db.pool import Connect, held
from giftcards.qr.shapes import QrKey
from giftcards.qr.signing import InvalidPayload, KeySet, QrClaims, SigningKey

RELOAD_SECONDS = 5.0
_UNKNOWN_KID_RELOAD_SECONDS = 1.0


class QrKeys:
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._keyset: KeySet | None = None
        self._loaded_at = 0.0

    @property
    def keyset(self) -> KeySet:
        if self._keyset is None:
            raise RuntimeError("QR keys are not loaded")
        return self._keyset

    async def load(self, conn: asyncpg.Connection) -> KeySet:
        """(Re)build the set from the database, creating the first key on a new database."""
        rows = await conn.fetch(
            "SELECT kid, private_key_sealed, state FROM signing_keys WHERE state <> 'retired'"
        )
        if not any(row["state"] == "active" for row in rows):
            await rotate(conn, self.keyring, only_if_none=True)
            rows = await conn.fetch(
                "SELECT kid, private_key_sealed, state FROM signing_keys WHERE state <> 'retired'"
            )
        keys = [
            SigningKey.from_private_bytes(row["kid"], self._open(row["kid"], row["private_key_sealed"]))
            for row in rows
        ]
        active = next(row["kid"] for row in rows if row["state"] == "active")
        self._keyset = KeySet(keys, active)
        self._loaded_at = time.monotonic()
        return self._keyset

    async def sign(
        self, conn: asyncpg.Connection, merchant_id: str, card_id: str, *, step: int = 0, generation: int
    ) -> str:
        """A payload of the card's current `generation` (cards.sign_qr reads it with the card)."""
        await self._reload_if_older(held(conn), RELOAD_SECONDS)
        return self.keyset.sign(merchant_id, card_id, step, generation)

    async def verify(self, connect: Connect, payload: str) -> QrClaims:
        """Claims of a genuine payload of a live key, else DomainError('invalid_qr_payload'). A connection
        is taken only to reload the set: a till's redemption holds none while it is checked."""
        await self._reload_if_older(connect, RELOAD_SECONDS)
        try:
            return self.keyset.verify(payload)
        except InvalidPayload:
            pass
        if await self._reload_if_older(connect, _UNKNOWN_KID_RELOAD_SECONDS):
            try:
                return self.keyset.verify(payload)
            except InvalidPayload:
                pass
        raise DomainError("invalid_qr_payload", "the QR payload is not genuine or not readable")

    async def _reload_if_older(self, connect: Connect, seconds: float) -> bool:
        if self._keyset is not None and time.monotonic() - self._loaded_at < seconds:
            return False
        async with connect() as conn:
            await self.load(conn)
        return True

    def _open(self, kid: str, sealed: bytes) -> bytes:
        return self.keyring.box.open(bytes(sealed), context=b"signing-key:" + kid.encode())


async def rotate(conn: asyncpg.Connection, keyring: Keyring, *, only_if_none: bool = False) -> str | None:
    """Make a new signing key active; the previous one keeps verifying until retired."""
    key = SigningKey.generate()
    sealed = keyring.box.seal(key.private_bytes(), context=b"signing-key:" + key.kid.encode())
    async with conn.transaction():
        await conn.execute("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
        if only_if_none and await conn.fetchval("SELECT 1 FROM signing_keys WHERE state = 'active'"):
            return None
        await conn.execute("UPDATE signing_keys SET state = 'verify_only' WHERE state = 'active'")
        await conn.execute(
            """INSERT INTO signing_keys (kid, public_key, private_key_sealed, state)
               VALUES ($1, $2, $3, 'active')""",
            key.kid,
            key.public_bytes(),
            sealed,
        )
    return key.kid


async def retire(conn: asyncpg.Connection, kid: str) -> QrKey:
    row = await conn.fetchrow(
        """UPDATE signing_keys SET state = 'retired', retired_at = now()
           WHERE kid = $1 AND state = 'verify_only' RETURNING *""",
        kid,
    )
    if row is None:
        raise DomainError(
            "invalid_state_transition", "only a key that no longer signs (verify_only) can be retired"
        )
    return key_view(row)


async def list_keys(conn: asyncpg.Connection) -> list[QrKey]:
    rows = await conn.fetch("SELECT * FROM signing_keys ORDER BY created_at")
    return [key_view(row) for row in rows]


def key_view(row: asyncpg.Record) -> QrKey:
    return QrKey(
        kid=row["kid"],
        state=row["state"],
        created_at=iso(row["created_at"]),
        retired_at=iso(row["retired_at"]),
    )
