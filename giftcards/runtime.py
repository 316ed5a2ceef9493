"""What a running process holds: settings, the pool, the keyring and the QR signing keys."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from giftcards.config import Settings
from giftcards.qr_keys import QrKeys
from giftcards.secrets_box import Keyring


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    keyring: Keyring
    qr_keys: QrKeys
