-- What an API key handed out ends when the key is revoked (issue 15, item 5).
--
-- A key is usually revoked because it leaked, so every secret it made that can create value, or read or
-- move a person's cards, must stop working with it:
--   * customise sessions (they issue a card of up to max_amount, and show the link of the gift sent);
--   * wallet sessions (a person's cards, their card-page links, the gifts waiting for them);
--   * card-page tokens minted on the key's authority — by POST /v1/cards/{id}/access_links or through a
--     wallet session the key opened (they reveal the card's code, and go on revealing it after the code
--     is replaced). A token handed to the claimant of a gift link names no key and stays: it went to the
--     card's holder, not to whoever held the key;
--   * unused terminal enrollment codes (they make a till that can look up and redeem cards).
-- Gift links stay: the gift is paid for and belongs to its recipient.
--
-- Each of these rows names its key, and the statement that resolves the secret reads the key with it and
-- refuses a revoked one. So a revocation holds in every server process from the moment it commits, and
-- revoking a key rewrites no other row (a session made in the same instant by a request that had just
-- authenticated with the key is refused like the others).
--
-- What the database guarantees here:
--   * a session or token that names a key names an existing key of its own merchant (foreign keys);
--   * a customise session can be revoked on its own (revoked_at); a gift it already sent stays sent.
-- Rows from before this migration: customise and wallet sessions always named their key; card-page tokens
-- and enrollment codes did not record it, so they keep the rules they had.

ALTER TABLE customise_sessions
    ADD COLUMN revoked_at timestamptz,
    ADD CONSTRAINT customise_session_key_exists
        FOREIGN KEY (merchant_id, api_key_id) REFERENCES api_keys (merchant_id, id);

ALTER TABLE wallet_sessions
    ADD CONSTRAINT wallet_session_key_exists
        FOREIGN KEY (merchant_id, api_key_id) REFERENCES api_keys (merchant_id, id);

-- NULL: the token went to a gift's claimant through the gift's own link.
ALTER TABLE card_access
    ADD COLUMN api_key_id text,
    ADD CONSTRAINT card_access_key_exists
        FOREIGN KEY (merchant_id, api_key_id) REFERENCES api_keys (merchant_id, id);

ALTER TABLE terminal_enrollments
    ADD COLUMN api_key_id text,
    ADD CONSTRAINT terminal_enrollment_key_exists
        FOREIGN KEY (merchant_id, api_key_id) REFERENCES api_keys (merchant_id, id);
