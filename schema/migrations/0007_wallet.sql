-- The wallet (issue 9): a person's cards of a merchant in one place, opened by a short-lived session link
-- the merchant's backend asks for; and gifts addressed to a known owner id, so they wait in that
-- person's wallet.
--
-- What the database guarantees here:
--   * a session link's secret is stored only as a keyed hash (unique), bound to one merchant and one
--     owner id in the same row, and lives at most a day (a named CHECK; the API allows 5 to 1440 min);
--   * the wallet's listings are index range scans: cards with value by expiry (soonest first, then
--     none), all of an owner's cards newest first, gifts waiting for an owner newest first.

CREATE TABLE wallet_sessions (
    merchant_id   text NOT NULL REFERENCES merchants (id),
    id            text NOT NULL CONSTRAINT wallet_session_id_shape CHECK (id ~ '^wls_[a-z2-7]{16}$'),
    token_hash    bytea NOT NULL CONSTRAINT wallet_session_hash_length CHECK (length(token_hash) = 32),
    api_key_id    text NOT NULL,
    owner_id      text NOT NULL CONSTRAINT wallet_session_owner_length CHECK (char_length(owner_id) BETWEEN 1 AND 128),
    display_name  text CONSTRAINT wallet_session_display_name_length CHECK (char_length(display_name) BETWEEN 1 AND 40),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    CONSTRAINT wallet_session_token_unique UNIQUE (token_hash),
    CONSTRAINT wallet_session_lifetime CHECK (
        expires_at > created_at AND expires_at <= created_at + interval '1 day')
);
CREATE INDEX wallet_sessions_by_expiry ON wallet_sessions (expires_at);

-- A gift may name the owner id it is meant for (e.g. a friend's openid): it then waits in that person's
-- wallet as well as behind its link. The link still works for whoever holds it (an openid differs
-- between a merchant's apps, so the link is what the recipient is sure to have).
ALTER TABLE gifts ADD COLUMN recipient_owner_id text
    CONSTRAINT gift_recipient_owner_length CHECK (char_length(recipient_owner_id) BETWEEN 1 AND 128);
CREATE INDEX gifts_waiting_for_owner ON gifts (merchant_id, recipient_owner_id, created_at DESC, id DESC)
    WHERE state = 'waiting' AND recipient_owner_id IS NOT NULL;

-- Cards that may still be used, soonest expiry first and cards without expiry last: the wallet's first
-- group. (A card past its expiry that the worker has not written off yet is in this index too; the
-- query's `> now()` bound skips it.) The balance is deliberately not in the predicate, the query filters
-- it: a column an index depends on makes every redemption's balance update a non-HOT update that
-- rewrites every index of the card.
CREATE INDEX cards_wallet_with_value ON cards (
    merchant_id, owner_id, (coalesce(expires_at, 'infinity'::timestamptz)), id)
    WHERE owner_id IS NOT NULL AND state IN ('active', 'pending', 'blocked');
-- Every card of an owner, newest first: the wallet's second group (used up, expired, deactivated).
CREATE INDEX cards_wallet_by_owner ON cards (merchant_id, owner_id, created_at, id)
    WHERE owner_id IS NOT NULL;
