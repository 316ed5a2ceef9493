-- One redemption path (issue 16): redeem_requests (schema/functions/redemption.sql) owns every answer to a
-- till's redemption, refusals included, and answers each in this shape.
--
-- idempotency_keys.posting is kept for the answers stored in that form by 0006 to 0013's one-round-trip
-- redemption: redeem_request still replays them, until they expire (48 hours after the upgrade); a later
-- migration drops the column.

-- A redemption's answer: `outcome` is ledger_posting's (ok or a refusal of the ledger), or one of
-- unauthenticated, invalid_request (Python answers with the body's field errors), rate_limited
-- (retry_after), store_limit_exceeded (store_limit), idempotency_conflict, or replayed: the key's stored
-- answer (stored_status, stored_body, sealed), or the posting of an answer stored before this migration.
CREATE TYPE redemption_answer AS (
    item            integer,
    outcome         text,
    principal_id    text,
    replayed        boolean,
    retry_after     integer,
    store_limit     bigint,
    stored_status   integer,
    stored_body     bytea,
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
