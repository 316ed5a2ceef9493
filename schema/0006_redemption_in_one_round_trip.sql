-- A redemption in one round trip: the caller's credential, the terminal's rate limit and role, the
-- idempotency key, the posting and the staff-log record, all in one statement (so one transaction).
--
-- It takes only the plain case. Whenever something needs more than that (an unknown or revoked
-- credential, a terminal that is rate-limited or above its store's limit, a card that is not found, a
-- signing key that is no longer live) it writes nothing and answers route = 'fallback', and the caller
-- runs the general path (giftcards/web/calls.py), which owns those answers and their records. What it
-- stores for an idempotency key is the posting itself; the application renders it into the answer, the
-- same way the first time and on every replay.

ALTER TABLE idempotency_keys ADD COLUMN posting jsonb;
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_outcome_once
    CHECK (posting IS NULL OR (status IS NULL AND body IS NULL));

CREATE FUNCTION redeem_request(
    p_token_kind text, p_merchant_id text, p_token_hash bytea, p_client text,
    p_idempotency_key text, p_request_hash bytea,
    p_kid text, p_card_id text, p_code_hash bytea, p_code_last4 text,
    p_amount bigint, p_currency text, p_allow_partial boolean, p_reference text,
    p_failure_limit integer, p_failure_window_seconds integer
) RETURNS TABLE (route text, status integer, body bytea, posting jsonb, request_hash bytea,
                principal text)
LANGUAGE plpgsql AS $$
DECLARE
    who           text;
    store         text;
    role          text;
    clerk_limit   bigint;
    card          text;
    stored        idempotency_keys%ROWTYPE;
    r             ledger_posting;
BEGIN
    route := 'fallback';
    IF p_token_kind = 'api_key' THEN
        SELECT k.id INTO who FROM api_keys k
         WHERE k.merchant_id = p_merchant_id AND k.token_hash = p_token_hash AND k.revoked_at IS NULL;
    ELSE
        SELECT t.id, t.store_id, t.role, s.redeem_limit INTO who, store, role, clerk_limit
          FROM terminals t JOIN stores s ON s.merchant_id = t.merchant_id AND s.id = t.store_id
         WHERE t.merchant_id = p_merchant_id AND t.token_hash = p_token_hash AND t.revoked_at IS NULL;
        IF who IS NOT NULL AND (
               (role = 'clerk' AND clerk_limit IS NOT NULL AND p_amount > clerk_limit)
            OR EXISTS (SELECT 1 FROM failed_attempts f
                        WHERE f.subject IN ('terminal:' || who, 'address:' || p_client)
                          AND f.created_at > now() - make_interval(secs => p_failure_window_seconds)
                        GROUP BY f.subject HAVING count(*) >= p_failure_limit)) THEN
            RETURN NEXT; RETURN;
        END IF;
    END IF;
    IF who IS NULL THEN RETURN NEXT; RETURN; END IF;
    IF p_kid IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM signing_keys WHERE kid = p_kid AND state <> 'retired') THEN
        RETURN NEXT; RETURN;
    END IF;
    IF p_card_id IS NOT NULL THEN
        SELECT c.id INTO card FROM cards c WHERE c.merchant_id = p_merchant_id AND c.id = p_card_id;
    ELSE
        SELECT c.id INTO card FROM cards c WHERE c.merchant_id = p_merchant_id AND c.code_hash = p_code_hash;
    END IF;
    IF card IS NULL THEN RETURN NEXT; RETURN; END IF;

    IF p_idempotency_key IS NOT NULL THEN
        SELECT * INTO stored FROM idempotency_keys k
         WHERE k.merchant_id = p_merchant_id AND k.principal_id = who AND k.key = p_idempotency_key;
        IF FOUND THEN
            -- The application compares the request hash and replays (or refuses) as for any key.
            route := 'stored';
            status := stored.status; body := stored.body; posting := stored.posting;
            request_hash := stored.request_hash; principal := who;
            RETURN NEXT; RETURN;
        END IF;
    END IF;

    r := post_activity(p_merchant_id, card, NULL, 'redeem', p_amount, p_currency, p_allow_partial, NULL, NULL,
                       p_token_kind, who, store, p_reference, p_idempotency_key);
    posting := to_jsonb(r);
    IF p_idempotency_key IS NOT NULL THEN
        -- A plain INSERT, after the posting: a concurrent twin with the same key that committed first
        -- makes it fail on the primary key, which undoes this whole statement (posting included); the
        -- application then takes the general path, which replays the twin's outcome.
        INSERT INTO idempotency_keys (merchant_id, principal_id, key, request_hash, posting)
        VALUES (p_merchant_id, who, p_idempotency_key, p_request_hash, posting);
    END IF;
    IF p_token_kind = 'terminal' THEN
        INSERT INTO staff_log (merchant_id, terminal_id, store_id, action, outcome, card_id, code_last4,
                               amount, currency, activity_id, client_address)
        VALUES (p_merchant_id, who, store, 'redeem', r.outcome, r.card_id, p_code_last4,
                CASE WHEN r.outcome = 'ok' THEN -r.entry_amount ELSE p_amount END,
                r.card_currency, r.entry_id, left(p_client, 100));
    END IF;
    route := 'posted';
    RETURN NEXT;
END $$;
