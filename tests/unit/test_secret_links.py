"""Every link kind makes, hashes and shapes its secret in one place, and hashes as the stored rows were
written (the hex below came from the code before secret_links existed: a change locks link holders out)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from giftcards.app import build_api
from giftcards.core.sealing import Keyring
from giftcards.core.secret_links import CARD_PAGE, CUSTOMISE, GIFT, WALLET, SecretLink

KEYRING = Keyring(bytes(range(32)))
SECRET = "Zk3" + "a" * 29
STORED = {
    CARD_PAGE: ("card-page:", SECRET, "4dd3103a2ae1879b3326cc3e375405ad459afa7b31a3335d78a1f3f3fdaa88a0"),
    CUSTOMISE: ("customise:", SECRET, "2377ff2cf2c8fb282ee15ff30e00d9b1f0fde7d8cbc0578495a51c06c338404b"),
    GIFT: ("gift-link:", SECRET, "70b7e91c89690b42e257b67aa3e28197c1afd43ed29703adb00c0e6c5711d836"),
    WALLET: ("wallet:", "gw_" + SECRET, "31858018e91542ee8ec728c5384aa97b69d583ed8ea23bd7087e5a10cb1aba74"),
}


@pytest.mark.parametrize("link", list(STORED), ids=lambda link: link.purpose)
def test_a_secret_hashes_as_the_rows_stored_before(link: SecretLink) -> None:
    purpose, secret, stored = STORED[link]
    old_way = hmac.new(KEYRING.token_lookup_key, (purpose + secret).encode(), hashlib.sha256).digest()
    assert link.hash(KEYRING, secret) == old_way == bytes.fromhex(stored)


@pytest.mark.parametrize("link", list(STORED), ids=lambda link: link.purpose)
def test_a_new_secret_is_well_formed_and_its_hash_is_what_is_stored(link: SecretLink) -> None:
    secret, stored = link.new(KEYRING)
    assert link.well_formed(secret) and secret.startswith(link.prefix)
    assert stored == link.hash(KEYRING, secret) and len(stored) == 32
    assert link.new(KEYRING)[0] != secret
    assert link.url("https://shop.example", secret) == f"https://shop.example{link.path}{secret}"


def test_anything_else_is_not_a_secret_of_the_kind() -> None:
    assert CARD_PAGE.well_formed(SECRET)
    assert not CARD_PAGE.well_formed(SECRET + "\n")
    assert not CARD_PAGE.well_formed(SECRET[:-1])
    assert not CARD_PAGE.well_formed(SECRET[:-1] + "!")
    assert not WALLET.well_formed(SECRET)
    assert WALLET.well_formed("gw_" + SECRET)


def test_every_link_kind_is_a_served_path_whose_secret_the_log_redacts() -> None:
    prefixes = build_api().secret_path_prefixes()
    assert all(link.path in prefixes for link in STORED)
    assert len({link.purpose for link in STORED}) == len(STORED)
