-- was sha256 a20b96f3e452f20e7197c9df90ff1b2d02cf909b82904ccb8e5ae7b00abf36e3
-- (as applied until its functions and triggers moved to schema/functions/: cards, ledger, redemption)
-- The till's redemption, hardened (issue 15, items 4 and 6); both paths change alike.
--
-- 1. A card carries a payload generation that is signed into its QR payloads (giftcards/signing.py). It
--    moves on in the very UPDATE that gives the card another holder or another code (trigger
--    card_passed_on), and post_activity refuses a payload of another generation under the card's lock:
--    a payload issued before the card was passed on never spends it, not even racing the transfer. The
--    refusal is `invalid_qr_payload`, as for a stale or forged payload, and says nothing of the card.
-- 2. The failed-attempt counters of an address are per merchant ('address:<merchant>:<ip>'), under a
--    ceiling for the address over all merchants ('platform-address:<ip>'), each subject with its own
--    limit. The numbers are giftcards/ratelimit.py's; the application passes them, so that both paths
--    read the same subjects with the same limits.

ALTER TABLE cards ADD COLUMN payload_generation integer NOT NULL DEFAULT 0
    CONSTRAINT card_payload_generation_range CHECK (payload_generation BETWEEN 0 AND 65535);

