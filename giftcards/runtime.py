"""What a running process holds: settings, the pool, the keyring and the QR signing keys."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import asyncpg

from giftcards.config import Settings
from giftcards.qr_keys import QrKeys
from giftcards.quick_redeem import Batcher
from giftcards.secrets_box import Keyring


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    keyring: Keyring
    qr_keys: QrKeys

    @functools.cached_property
    def redemptions(self) -> Batcher:
        """The tills' redemptions of this process, on their way to the database in batches."""
        return Batcher(self.pool, timeout=self.settings.db_timeout, in_flight=self.settings.redeem_batches)
