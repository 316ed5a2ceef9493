"""Domain tests run without a server, so they install the public-id codec the runtime would install."""

from __future__ import annotations

import pytest

from giftcards.core import public_ids
from tests.support.domain import KEYRING


@pytest.fixture(autouse=True, scope="session")
def public_id_codec() -> None:
    public_ids.install(KEYRING.public_ids)  # the same master key as the servers under test
