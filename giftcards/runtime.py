"""What a running process holds: settings, the pool, the keyring and the QR signing keys."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import asyncpg

from giftcards import public_ids
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

    def __post_init__(self) -> None:
        # Ids are rendered deep in the domain's views and in replays of stored answers, where no keyring
        # is at hand: the process's keyring makes the process's id codec (public_ids).
        public_ids.install(self.keyring.public_ids)

    @functools.cached_property
    def redemptions(self) -> Batcher:
        """The tills' redemptions of this process, on their way to the database in batches."""
        return Batcher(self.pool, timeout=self.settings.db_timeout, in_flight=self.settings.redeem_batches)
