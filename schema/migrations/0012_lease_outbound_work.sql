-- 0014: outbound WeChat work holds no database connection and no transaction while WeChat answers
-- (issue 15, item 2).
--
-- Before, a token refresh held a row lock, a design's card/create and a card's deposit held an advisory
-- lock inside the request's transaction, and the outbox worker held its message's row lock, each for as
-- long as WeChat took to answer: a merchant whose WeChat answered a byte every few seconds held pooled
-- connections until every other merchant got 503. Now such work claims a lease in one short statement,
-- gives its connection back, calls WeChat, and writes the result in another short transaction, checking
-- that it still holds the lease.
--
--   * `leases`: work that must run once at a time across processes (a credential refresh, a design's
--     card/create, a card's deposit, a batch's sync), named per merchant. A lease has an expiry, so a
--     holder that died lets go by itself; the holder's own WeChat work is bounded by its deadline
--     (GIFTCARDS_WECHAT_TIMEOUT), well inside the expiry.
--   * `wechat_outbox.claimed_by`: the delivery that claimed a message. Claiming sets it and moves
--     `next_attempt_at` past the claim's expiry, so no other worker takes the message meanwhile (and the
--     card's later messages wait behind it as before); the outcome is written only while `claimed_by`
--     still names the claim.

CREATE TABLE leases (
    merchant_id  text NOT NULL REFERENCES merchants (id),
    name         text NOT NULL CONSTRAINT lease_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    holder       uuid NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, name)
);
CREATE INDEX leases_expiry ON leases (expires_at);

ALTER TABLE wechat_outbox ADD COLUMN claimed_by uuid;
