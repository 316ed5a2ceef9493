"""What a running process holds: settings, the pool, the keyring, the QR signing keys and the way out to
WeChat."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import asyncpg

from giftcards.config import Settings
from giftcards.core import public_ids
from giftcards.core.sealing import Keyring
from giftcards.qr.keys import QrKeys
from giftcards.value.redemption import Batcher
from giftcards.wechat.upstream import Upstream


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    keyring: Keyring
    qr_keys: QrKeys
    # This process's HTTP to WeChat, and each merchant's turns in it (giftcards/wechat/upstream.py).
    wechat: Upstream = field(init=False)

    def __post_init__(self) -> None:
        self.wechat = Upstream(per_merchant=self.settings.wechat_calls_per_merchant)
        # Ids are rendered deep in the domain's views and in replays of stored answers, where no keyring
        # is at hand: the process's keyring makes the process's id codec (public_ids).
        public_ids.install(self.keyring.public_ids)

    @functools.cached_property
    def redemptions(self) -> Batcher:
        """The tills' redemptions of this process, on their way to the database in batches."""
        return Batcher(
            self.pool,
            timeout=self.settings.db_timeout,
            in_flight=self.settings.redeem_batches,
        )

    async def aclose(self) -> None:
        await self.wechat.aclose()
