-- One redemption path (issue 16): redeem_requests (schema/functions/redemption.sql) owns every answer to a
-- till's redemption, refusals included, and answers each in this shape.
--
-- A redemption's Idempotency-Key keeps its answer as the posting (idempotency_keys.posting, as since
-- 0006): the statement writes it, and Python renders it the same way the first time and on replay. It holds
-- no secret, so it needs no sealing, and writing it needs no second round trip while the card is locked.

-- A redemption's answer: `outcome` is ledger_posting's (ok or a refusal of the ledger), or one of
-- unauthenticated, invalid_request (Python answers with the body's field errors), rate_limited
-- (retry_after), store_limit_exceeded (store_limit), idempotency_conflict; `replayed`: the key's stored
-- posting.
CREATE TYPE redemption_answer AS (
    item            integer,
    outcome         text,
    principal_id    text,
    replayed        boolean,
    retry_after     integer,
    store_limit     bigint,
    entry_id        bigint,
    entry_amount    bigint,
    requested       bigint,
    card_id         text,
    card_state      text,
    card_balance    bigint,
    card_currency   text,
    card_expires_at timestamptz,
    refundable      bigint,
    created_at      timestamptz
);
