-- Less work per redemption inside PostgreSQL, where most of a redemption's time goes (bench/README.md).
--
-- 1. Redemptions go in batches: redeem_requests takes several (arrays, one element each) and runs them
--    one after the other in one statement, so one transaction and one commit serve them all. Under load
--    the commit (WAL flush and the waits around it) is a large share of a redemption's cost; batches form
--    only when requests queue up (giftcards/quick_redeem.py), a lone one still goes at once.
-- 2. redeem_request checks the credential, the terminal's limits and the signing key in one SELECT and no
--    longer looks the card up before posting: post_activity finds it, or answers card_not_found /
--    invalid_code having written nothing, and the request goes the general way.
-- 3. The deferred balance check reads the card and its last entry in one statement.
-- 4. staff_log's foreign key to merchants goes: its foreign key to terminals already names the merchant
--    (terminals -> stores -> merchants), and every terminal's redemption was taking a share lock on the
--    one merchant row all tills have in common.

DROP FUNCTION redeem_request(text, text, bytea, text, text, bytea, text, text, bytea, text, bigint, text,
                             boolean, text, integer, integer);

CREATE FUNCTION redeem_request(
    p_token_kind text, p_merchant_id text, p_token_hash bytea, p_client text,
    p_idempotency_key text, p_request_hash bytea,
    p_kid text, p_card_id text, p_code_hash bytea, p_code_last4 text,
    p_amount bigint, p_currency text, p_allow_partial boolean, p_reference text,
    p_failure_limit integer, p_failure_window_seconds integer
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
        SELECT t.id, t.store_id,
               NOT (t.role = 'clerk' AND s.redeem_limit IS NOT NULL AND p_amount > s.redeem_limit)
               AND NOT EXISTS (SELECT 1 FROM failed_attempts f
                                WHERE f.subject IN ('terminal:' || t.id, 'address:' || p_client)
                                  AND f.created_at > now() - make_interval(secs => p_failure_window_seconds)
                                GROUP BY f.subject HAVING count(*) >= p_failure_limit)
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
                       NULL, NULL, p_token_kind, who, store, p_reference, p_idempotency_key);
    IF r.outcome IN ('card_not_found', 'invalid_code') THEN RETURN NEXT; RETURN; END IF;  -- nothing written
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
CREATE FUNCTION redeem_requests(
    p_token_kinds text[], p_merchant_ids text[], p_token_hashes bytea[], p_clients text[],
    p_idempotency_keys text[], p_request_hashes bytea[],
    p_kids text[], p_card_ids text[], p_code_hashes bytea[], p_code_last4s text[],
    p_amounts bigint[], p_currencies text[], p_allow_partials boolean[], p_references text[],
    p_failure_limit integer, p_failure_window_seconds integer
) RETURNS TABLE (item integer, route text, posting jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. cardinality(p_token_kinds) LOOP
        item := i;
        SELECT r.route, r.posting INTO route, posting
          FROM redeem_request(p_token_kinds[i], p_merchant_ids[i], p_token_hashes[i], p_clients[i],
                              p_idempotency_keys[i], p_request_hashes[i], p_kids[i], p_card_ids[i],
                              p_code_hashes[i], p_code_last4s[i], p_amounts[i], p_currencies[i],
                              p_allow_partials[i], p_references[i], p_failure_limit,
                              p_failure_window_seconds) AS r;
        RETURN NEXT;
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION card_check_balance_matches_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    current_balance bigint;
    last_balance bigint;
BEGIN
    -- Deferred to commit: read the row as it is now, not as it was when the event was queued.
    SELECT c.balance, (SELECT e.balance_after FROM ledger_entries e
                        WHERE e.merchant_id = c.merchant_id AND e.card_id = c.id
                        ORDER BY e.id DESC LIMIT 1)
      INTO current_balance, last_balance
      FROM cards c WHERE c.merchant_id = NEW.merchant_id AND c.id = NEW.id;
    IF last_balance IS DISTINCT FROM current_balance THEN
        RAISE EXCEPTION 'balance of card % (%) does not match its ledger (%)', NEW.id, current_balance, last_balance
            USING ERRCODE = 'check_violation', CONSTRAINT = 'card_balance_matches_ledger';
    END IF;
    RETURN NULL;
END $$;

ALTER TABLE staff_log DROP CONSTRAINT staff_log_merchant_id_fkey;
