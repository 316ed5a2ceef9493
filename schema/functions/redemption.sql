-- A redemption in one round trip: the caller's credential, the terminal's limits and the signing key, the
-- idempotency key, the posting and the staff-log record, all in one statement (so one transaction).
--
-- It takes only the plain case. Whenever something needs more than that (an unknown or revoked
-- credential, a terminal that is rate-limited or above its store's limit, a card that is not found, a
-- signing key that is no longer live, a retried key) it writes nothing and answers route = 'fallback',
-- and the caller runs the general path, which owns those answers and their records.
--
-- Redemptions go in batches: redeem_requests takes several (arrays, one element each) and runs them one
-- after the other in one statement, so one transaction and one commit serve them all.
--
-- The failed-attempt counters of an address are per merchant ('address:<merchant>:<ip>'), under a ceiling
-- for the address over all merchants ('platform-address:<ip>'), each subject with its own limit. The
-- numbers are giftcards/stores/ratelimit.py's; the application passes them, so that both paths read the
-- same subjects with the same limits.

CREATE OR REPLACE FUNCTION redeem_request(
    p_token_kind text, p_merchant_id text, p_token_hash bytea, p_client text,
    p_idempotency_key text, p_request_hash bytea,
    p_kid text, p_card_id text, p_payload_generation integer, p_code_hash bytea, p_code_last4 text,
    p_amount bigint, p_currency text, p_allow_partial boolean, p_reference text,
    p_terminal_limit integer, p_address_limit integer, p_platform_limit integer,
    p_failure_window_seconds integer
) RETURNS TABLE (route text, posting jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    who     text;
    store   text;
    plain   boolean;  -- nothing the general path must answer instead: a limit, a retired key
    r       ledger_posting;
BEGIN
    route := 'fallback';
    IF p_token_kind = 'api_key' THEN
        SELECT k.id, p_kid IS NULL OR EXISTS (SELECT 1 FROM signing_keys WHERE kid = p_kid AND state <> 'retired')
          INTO who, plain
          FROM api_keys k
         WHERE k.merchant_id = p_merchant_id AND k.token_hash = p_token_hash AND k.revoked_at IS NULL;
    ELSE
        -- The subjects of giftcards/ratelimit.py's terminal_subjects, spelt alike; without a client address
        -- the two address subjects are NULL and match nothing, as Python then leaves them out.
        SELECT t.id, t.store_id,
               NOT (t.role = 'clerk' AND s.redeem_limit IS NOT NULL AND p_amount > s.redeem_limit)
               AND NOT EXISTS (
                   SELECT 1 FROM (VALUES ('terminal:' || t.id, p_terminal_limit),
                                         ('address:' || p_merchant_id || ':' || p_client, p_address_limit),
                                         ('platform-address:' || p_client, p_platform_limit)) AS c (subject, most)
                    WHERE (SELECT count(*) FROM (
                              SELECT 1 FROM failed_attempts f
                               WHERE f.subject = c.subject
                                 AND f.created_at > now() - make_interval(secs => p_failure_window_seconds)
                               LIMIT c.most) AS recent) >= c.most)
               AND (p_kid IS NULL OR EXISTS (SELECT 1 FROM signing_keys WHERE kid = p_kid AND state <> 'retired'))
          INTO who, store, plain
          FROM terminals t JOIN stores s ON s.merchant_id = t.merchant_id AND s.id = t.store_id
         WHERE t.merchant_id = p_merchant_id AND t.token_hash = p_token_hash AND t.revoked_at IS NULL;
    END IF;
    IF who IS NULL OR NOT plain THEN RETURN NEXT; RETURN; END IF;
    IF p_idempotency_key IS NOT NULL AND EXISTS (
        SELECT 1 FROM idempotency_keys k
         WHERE k.merchant_id = p_merchant_id AND k.principal_id = who AND k.key = p_idempotency_key) THEN
        RETURN NEXT; RETURN;  -- a retry: the general path replays the stored outcome, or refuses a change
    END IF;

    r := post_activity(p_merchant_id, p_card_id, p_code_hash, 'redeem', p_amount, p_currency, p_allow_partial,
                       NULL, NULL, p_token_kind, who, store, p_reference, p_idempotency_key,
                       p_payload_generation);
    IF r.outcome IN ('card_not_found', 'invalid_code', 'invalid_qr_payload') THEN
        RETURN NEXT; RETURN;  -- nothing written: the general path answers, counts the failure and logs it
    END IF;
    posting := to_jsonb(r);
    IF p_idempotency_key IS NOT NULL THEN
        -- A twin with the same key that committed meanwhile makes this fail on the primary key, which
        -- undoes the whole statement; the caller then sends each request the general way.
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

-- The redemptions of a batch, in the order given (the caller orders them by card, so that two batches
-- lock the cards they share in the same order); one row per request: its position, route and posting.
CREATE OR REPLACE FUNCTION redeem_requests(
    p_token_kinds text[], p_merchant_ids text[], p_token_hashes bytea[], p_clients text[],
    p_idempotency_keys text[], p_request_hashes bytea[],
    p_kids text[], p_card_ids text[], p_payload_generations integer[], p_code_hashes bytea[],
    p_code_last4s text[], p_amounts bigint[], p_currencies text[], p_allow_partials boolean[],
    p_references text[],
    p_terminal_limit integer, p_address_limit integer, p_platform_limit integer,
    p_failure_window_seconds integer
) RETURNS TABLE (item integer, route text, posting jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. cardinality(p_token_kinds) LOOP
        item := i;
        SELECT r.route, r.posting INTO route, posting
          FROM redeem_request(p_token_kinds[i], p_merchant_ids[i], p_token_hashes[i], p_clients[i],
                              p_idempotency_keys[i], p_request_hashes[i], p_kids[i], p_card_ids[i],
                              p_payload_generations[i], p_code_hashes[i], p_code_last4s[i], p_amounts[i],
                              p_currencies[i], p_allow_partials[i], p_references[i], p_terminal_limit,
                              p_address_limit, p_platform_limit, p_failure_window_seconds) AS r;
        RETURN NEXT;
    END LOOP;
END $$;
