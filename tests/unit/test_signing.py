from __future__ import annotations

import base64
import re
import string

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from giftcards.core.ids import id_to_bytes, new_id
from giftcards.qr import signing
from giftcards.qr.signing import (
    MAX_GENERATION,
    PAYLOAD_LENGTH,
    PAYLOAD_V2_LENGTH,
    InvalidPayload,
    KeySet,
    QrClaims,
    SigningKey,
)

MERCHANT = "mer_nbswy3dpo5xxe3de"
CARD = "card_7777777777777777"
QR_ALPHANUMERIC = set(string.digits + string.ascii_uppercase + " $%*+-./:")


def _single(key: SigningKey) -> KeySet:
    return KeySet([key], key.kid)


def _b32decode(text: str) -> bytes:
    return base64.b32decode(text + "=" * (-len(text) % 8))


def _refused(keys: KeySet, payload: str) -> bool:
    try:
        keys.verify(payload)
    except InvalidPayload as exc:
        assert str(exc) == "invalid QR payload"
        return True
    return False


def test_round_trip() -> None:
    key = SigningKey.generate()
    keys = _single(key)
    merchant, card = new_id("mer"), new_id("card")
    for step in (0, 1, 57_600_000, 2**32 - 1):
        assert keys.verify(keys.sign(merchant, card, step)) == QrClaims(key.kid, merchant, card, step)
    assert keys.verify(keys.sign(merchant, card)).step == 0


def test_wire_format() -> None:
    """Decode by hand what the module docstring promises, and check the signature independently."""
    key = SigningKey.generate()
    payload = _single(key).sign(MERCHANT, CARD, 0x01020304)
    assert len(payload) == PAYLOAD_LENGTH == 151
    assert payload.startswith("GC1")
    assert set(payload) <= QR_ALPHANUMERIC
    assert re.fullmatch("GC1[A-Z2-7]{148}", payload)
    blob = base64.b32decode(payload[3:] + "====")
    assert len(blob) == 92
    assert blob[:4] == bytes.fromhex(key.kid)
    assert blob[4:14] == id_to_bytes(MERCHANT, "mer") == b"helloworld"
    assert blob[14:24] == b"\xff" * 10
    assert blob[24:28] == b"\x01\x02\x03\x04"
    Ed25519PublicKey.from_public_bytes(key.public_bytes()).verify(blob[28:], b"giftcards-qr-v1" + blob[:28])


def test_a_generation_round_trips_and_generation_0_keeps_the_version_1_payload() -> None:
    key = SigningKey.generate()
    keys = _single(key)
    for generation in (1, 2, 300, MAX_GENERATION):
        for step in (0, 57_600_000):
            payload = keys.sign(MERCHANT, CARD, step, generation)
            assert len(payload) == PAYLOAD_V2_LENGTH == 154 and payload.startswith("GC2")
            assert _single(key).verify(payload) == QrClaims(key.kid, MERCHANT, CARD, step, generation)
    v1 = keys.sign(MERCHANT, CARD, 7, 0)
    assert v1 == keys.sign(MERCHANT, CARD, 7) and len(v1) == PAYLOAD_LENGTH and v1.startswith("GC1")
    assert _single(key).verify(v1).generation == 0


def test_wire_format_version_2() -> None:
    """Decode by hand what the module docstring promises for version 2, and check the signature."""
    key = SigningKey.generate()
    payload = _single(key).sign(MERCHANT, CARD, 0x01020304, 0x0506)
    assert re.fullmatch("GC2[A-Z2-7]{151}", payload) and set(payload) <= QR_ALPHANUMERIC
    blob = _b32decode(payload[3:])
    assert len(blob) == 94
    assert blob[:4] == bytes.fromhex(key.kid)
    assert blob[4:14] == b"helloworld" and blob[14:24] == b"\xff" * 10
    assert blob[24:28] == b"\x01\x02\x03\x04" and blob[28:30] == b"\x05\x06"
    public = Ed25519PublicKey.from_public_bytes(key.public_bytes())
    public.verify(blob[30:], b"giftcards-qr-v2" + blob[:30])


def test_a_generation_cannot_be_cut_off_changed_or_relabelled() -> None:
    """A version 2 payload is no version 1 payload with something added: the contexts differ, so neither
    a payload of generation 0 nor one of another generation can be made from it without the key."""
    key = SigningKey.generate()
    keys = _single(key)
    payload = keys.sign(MERCHANT, CARD, 0, 3)
    blob = _b32decode(payload[3:])
    signed, signature = blob[:30], blob[30:]
    as_v1 = signed[:28] + signature  # the generation dropped, the signature kept
    assert _refused(keys, "GC1" + base64.b32encode(as_v1).decode().rstrip("="))
    for generation in (b"\x00\x00", b"\x00\x02", b"\x00\x04", b"\x01\x03"):
        forged = signed[:28] + generation + signature
        assert _refused(keys, "GC2" + base64.b32encode(forged).decode().rstrip("="))
    # Signed by the key itself, a version 2 payload of generation 0 is refused too: one spelling each.
    zero = signed[:28] + b"\x00\x00"
    made = zero + key.private_key.sign(b"giftcards-qr-v2" + zero)  # type: ignore[union-attr]
    assert _refused(keys, "GC2" + base64.b32encode(made).decode().rstrip("="))
    assert _refused(keys, "GC1" + payload[3:])  # a version 2 body under the version 1 magic


def test_sign_refuses_bad_input() -> None:
    keys = _single(SigningKey.generate())
    for step in (-1, 2**32):
        with pytest.raises(ValueError, match="step"):
            keys.sign(MERCHANT, CARD, step)
    for generation in (-1, MAX_GENERATION + 1):
        with pytest.raises(ValueError, match="generation"):
            keys.sign(MERCHANT, CARD, 0, generation)
    with pytest.raises(ValueError):
        keys.sign(CARD, CARD)
    with pytest.raises(ValueError):
        keys.sign(MERCHANT, MERCHANT)


def test_a_key_outside_the_set_is_refused() -> None:
    ours, theirs = SigningKey.generate(), SigningKey.generate()
    assert _refused(_single(ours), _single(theirs).sign(MERCHANT, CARD))
    # the same kid on a different key: the kid selects the key, the signature still has to match
    impostor = SigningKey(ours.kid, Ed25519PrivateKey.generate())
    assert _refused(_single(ours), _single(impostor).sign(MERCHANT, CARD))


@pytest.mark.parametrize("generation", [0, 9])
def test_every_single_character_change_is_refused(generation: int) -> None:
    keys = _single(SigningKey.generate())
    payload = keys.sign(MERCHANT, CARD, 12345, generation)
    replacements = string.ascii_letters + string.digits + "=-+ "
    for i, original in enumerate(payload):
        for symbol in replacements.replace(original, ""):
            assert _refused(keys, payload[:i] + symbol + payload[i + 1 :]), (i, symbol)
    assert keys.verify(payload).step == 12345 and keys.verify(payload).generation == generation


def test_unused_bits_of_the_last_character_must_be_zero() -> None:
    """The last base32 character carries one data bit and four unused ones: only one spelling is valid."""
    keys = _single(SigningKey.generate())
    payload = keys.sign(MERCHANT, CARD)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    top_bit = alphabet.index(payload[-1]) & 0b10000
    same_blob = [s for s in alphabet if alphabet.index(s) & 0b10000 == top_bit and s != payload[-1]]
    assert len(same_blob) == 15
    for symbol in same_blob:
        variant = payload[:-1] + symbol
        assert base64.b32decode(variant[3:] + "====") == base64.b32decode(payload[3:] + "====")
        assert _refused(keys, variant)


def test_truncation_and_extension_are_refused() -> None:
    keys = _single(SigningKey.generate())
    payload = keys.sign(MERCHANT, CARD)
    for length in range(len(payload)):
        assert _refused(keys, payload[:length])
        assert _refused(keys, payload[len(payload) - length :])
    for extra in ("A", "=", "====", " ", "\n", payload):
        assert _refused(keys, payload + extra)
    assert _refused(keys, payload.lower())


def test_rotation_and_retirement() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    before = _single(old)
    old_payload = before.sign(MERCHANT, CARD)
    assert before.verify(old_payload).kid == old.kid  # now cached in `before`

    # the new key signs; the old one stays to verify, here from its public half only
    during = KeySet([SigningKey.from_public_bytes(old.kid, old.public_bytes()), new], new.kid)
    new_payload = during.sign(MERCHANT, CARD)
    assert during.verify(old_payload) == QrClaims(old.kid, MERCHANT, CARD, 0)
    assert during.verify(new_payload) == QrClaims(new.kid, MERCHANT, CARD, 0)
    assert _refused(before, new_payload)

    # the old key is retired: its payloads are refused although `before` and `during` cached them
    after = _single(new)
    assert _refused(after, old_payload)
    assert after.verify(new_payload).kid == new.kid


def test_the_cache_never_holds_a_refused_payload() -> None:
    key = SigningKey.generate()
    keys = _single(key)
    good = keys.sign(MERCHANT, CARD)
    assert len(keys._verified) == 1  # what this set signed is known genuine
    keys._verified.clear()
    forged = _single(SigningKey(key.kid, Ed25519PrivateKey.generate())).sign(MERCHANT, CARD)
    tampered = good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1]
    for _ in range(3):
        for bad in (forged, tampered, good[:-1]):
            assert _refused(keys, bad)
    assert len(keys._verified) == 0

    first = keys.verify(good)
    assert keys.verify(good) is first  # served from the cache
    assert len(keys._verified) == 1
    assert _refused(keys, forged)  # same claims as `good`, yet refused
    assert len(keys._verified) == 1


def test_cache_is_bounded_and_keeps_the_most_recent() -> None:
    keys = _single(SigningKey.generate())
    payloads = [keys.sign(MERCHANT, CARD, step) for step in range(signing._CACHE_SIZE + 10)]
    assert len(keys._verified) == signing._CACHE_SIZE
    assert payloads[0] not in keys._verified and payloads[-1] in keys._verified
    assert keys.verify(payloads[0]).step == 0  # evicted, still verifies the slow way


def test_errors_do_not_leak_key_material() -> None:
    key = SigningKey.generate()
    keys = _single(key)
    payload = _single(SigningKey(key.kid, Ed25519PrivateKey.generate())).sign(MERCHANT, CARD)
    with pytest.raises(InvalidPayload) as excinfo:
        keys.verify(payload)
    assert str(excinfo.value) == "invalid QR payload"
    assert excinfo.value.__cause__ is None
    assert excinfo.value.__context__ is None or excinfo.value.__suppress_context__
    assert isinstance(excinfo.value, ValueError)


def test_keys_held_only_as_public_keys_verify_the_slow_way() -> None:
    """With the private key at hand a payload is checked by signing again; without it, by verifying."""
    signer, other = SigningKey.generate(), SigningKey.generate()
    by_other = _single(other).sign(MERCHANT, CARD, 7)
    public_only = SigningKey.from_public_bytes(other.kid, other.public_bytes())
    keys = KeySet([signer, public_only], signer.kid)
    assert keys.verify(by_other) == QrClaims(other.kid, MERCHANT, CARD, 7)
    tampered = by_other[:-3] + ("A" if by_other[-3] != "A" else "B") + by_other[-2:]
    assert _refused(keys, tampered)


def test_signing_key_bytes() -> None:
    key = SigningKey.generate()
    assert re.fullmatch("[0-9a-f]{8}", key.kid)
    assert len(key.private_bytes()) == 32 and len(key.public_bytes()) == 32
    restored = SigningKey.from_private_bytes(key.kid, key.private_bytes())
    assert restored.public_bytes() == key.public_bytes()
    assert _single(restored).verify(_single(key).sign(MERCHANT, CARD)).kid == key.kid

    public_only = SigningKey.from_public_bytes(key.kid, key.public_bytes())
    assert public_only.private_key is None
    assert public_only.public_bytes() == key.public_bytes()
    with pytest.raises(ValueError, match="only verify"):
        public_only.private_bytes()


@pytest.mark.parametrize("kid", ["", "abc", "0123456", "012345678", "ABCDEF01", "0123456g", " 1234567"])
def test_kid_format(kid: str) -> None:
    with pytest.raises(ValueError, match="kid"):
        SigningKey(kid, Ed25519PrivateKey.generate())


def test_raw_key_length_is_checked() -> None:
    with pytest.raises(ValueError):
        SigningKey.from_private_bytes("01234567", bytes(31))
    with pytest.raises(ValueError):
        SigningKey.from_public_bytes("01234567", bytes(33))


def test_keyset_construction() -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    with pytest.raises(ValueError, match="signer"):
        KeySet([key], other.kid)
    with pytest.raises(ValueError, match="signer"):
        KeySet([SigningKey.from_public_bytes(key.kid, key.public_bytes())], key.kid)
    with pytest.raises(ValueError, match="share the kid"):
        KeySet([key, SigningKey(key.kid, Ed25519PrivateKey.generate())], key.kid)
    assert KeySet([key, other], other.kid).signer_kid == other.kid


def test_public_keys() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    published = KeySet(
        [SigningKey.from_public_bytes(old.kid, old.public_bytes()), new], new.kid
    ).public_keys()
    assert [entry["kid"] for entry in published] == [old.kid, new.kid]
    for entry, key in zip(published, (old, new), strict=True):
        assert set(entry) == {"kid", "kty", "crv", "x"}
        assert entry["kty"] == "OKP" and entry["crv"] == "Ed25519"
        assert re.fullmatch("[A-Za-z0-9_-]{43}", entry["x"])
        assert base64.urlsafe_b64decode(entry["x"] + "=") == key.public_bytes()
