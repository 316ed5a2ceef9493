-- A till's redemption (giftcards/value/redemption.py): the one path every redemption takes. Python reads
-- and checks the request (the body, the signature of a QR payload, the keyed hash of a code) and sends what
-- it found; this statement authenticates the caller, finds the Idempotency-Key's answer (or keeps one),
-- applies the terminal's limits, posts, counts a failed lookup, writes the staff-log row, and answers
-- (type redemption_answer, migrations/0015), storing the posting as the key's answer in the same
-- statement: one round trip, one commit. Python renders the answer from it, the first time and on replay.

-- The signatures before the single path (schema/migrations/0011).
DROP FUNCTION IF EXISTS redeem_requests(text[], text[], bytea[], text[], text[], bytea[], text[], text[],
                                        integer[], bytea[], text[], bigint[], text[], boolean[], text[],
                                        integer, integer, integer, integer);
DROP FUNCTION IF EXISTS redeem_request(text, text, bytea, text, text, bytea, text, text, integer, bytea,
                                       text, bigint, text, boolean, text, integer, integer, integer, integer);

CREATE OR REPLACE FUNCTION redeem_request(
    p_token_kind text, p_merchant_id text, p_token_hash bytea, p_client text,
    p_idempotency_key text, p_request_hash bytea,
    p_refused text, p_kid text, p_card_id text, p_payload_generation integer, p_code_hash bytea,
    p_code_last4 text, p_amount bigint, p_currency text, p_allow_partial boolean, p_reference text,
    p_limits integer[]
) RETURNS redemption_answer LANGUAGE plpgsql AS $$
DECLARE
    a        redemption_answer;
    r        ledger_posting;
    store    text;
    role     text;
    revoked  timestamptz;
    most     bigint;
    new_key  boolean := false;
    flagged  boolean := false;
    stored   idempotency_keys%ROWTYPE;
BEGIN
    a.replayed := false;
    IF p_token_kind = 'api_key' THEN
        SELECT k.id INTO a.principal_id FROM api_keys k
         WHERE k.merchant_id = p_merchant_id AND k.token_hash = p_token_hash AND k.revoked_at IS NULL;
    ELSE
        SELECT t.id, t.store_id, t.role, t.revoked_at, s.redeem_limit INTO a.principal_id, store, role, revoked, most
          FROM terminals t JOIN stores s ON s.merchant_id = t.merchant_id AND s.id = t.store_id
         WHERE t.merchant_id = p_merchant_id AND t.token_hash = p_token_hash;
        IF revoked IS NOT NULL THEN  -- logged, as terminals.authenticate logs it
            PERFORM record_staff_action(p_merchant_id, a.principal_id, store, 'authenticate', 'unauthenticated',
                                        NULL, NULL, NULL, NULL, NULL, false, NULL);
            a.principal_id := NULL;
        END IF;
    END IF;
    IF a.principal_id IS NULL THEN a.outcome := 'unauthenticated'; RETURN a; END IF;
    IF p_refused = 'invalid_request' THEN a.outcome := p_refused; RETURN a; END IF;

    -- A retry finds its answer before any limit applies, as in idempotency.run_once. A new key is written
    -- once, with its answer, at the end: a twin sent meanwhile in another batch then fails on the primary
    -- key, its batch is undone, and sent again alone it finds this answer.
    IF p_idempotency_key IS NOT NULL THEN
        SELECT * INTO stored FROM idempotency_keys k
         WHERE k.merchant_id = p_merchant_id AND k.principal_id = a.principal_id AND k.key = p_idempotency_key;
        IF FOUND THEN
            IF stored.request_hash <> p_request_hash THEN a.outcome := 'idempotency_conflict'; RETURN a; END IF;
            a.replayed := true;
            r := jsonb_populate_record(NULL::ledger_posting, stored.posting);
        ELSE
            new_key := true;
        END IF;
    END IF;

    IF NOT a.replayed THEN
        IF p_token_kind = 'terminal' THEN
            a.retry_after := terminal_failure_wait(p_merchant_id, a.principal_id, p_client, p_limits);
            IF a.retry_after IS NOT NULL THEN
                a.outcome := 'rate_limited';
            ELSIF role = 'clerk' AND most IS NOT NULL AND p_amount > most THEN
                a.outcome := 'store_limit_exceeded'; a.store_limit := most;
            END IF;
            IF a.outcome IS NOT NULL THEN  -- answers that trying again may change are not kept
                PERFORM record_staff_action(p_merchant_id, a.principal_id, store, 'redeem', a.outcome, NULL,
                                            p_code_last4, p_amount, NULL, NULL, false, p_client);
                RETURN a;
            END IF;
        END IF;

        IF p_refused IS NULL AND p_kid IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM signing_keys WHERE kid = p_kid AND state <> 'retired') THEN
            p_refused := 'invalid_qr_payload';  -- signed by a key retired since this process loaded it
        END IF;
        IF p_refused IS NOT NULL THEN  -- invalid_qr_payload or invalid_code: no card is named
            r.outcome := p_refused; r.requested := p_amount;
        ELSE
            r := post_activity(p_merchant_id, p_card_id, p_code_hash, 'redeem', p_amount, p_currency,
                               p_allow_partial, NULL, NULL, p_token_kind, a.principal_id, store, p_reference,
                               p_idempotency_key, p_payload_generation);
            IF r.outcome = 'card_not_found' THEN
                r.outcome := 'invalid_qr_payload';  -- a genuine payload of a deleted card, told as a forged one
            END IF;
        END IF;

        IF p_token_kind = 'terminal' THEN
            IF r.outcome IN ('invalid_code', 'invalid_qr_payload') THEN
                flagged := record_terminal_failure(p_merchant_id, a.principal_id, p_client, p_limits);
            END IF;
            PERFORM record_staff_action(
                p_merchant_id, a.principal_id, store, 'redeem', r.outcome, r.card_id, p_code_last4,
                CASE WHEN r.outcome = 'ok' THEN -r.entry_amount ELSE p_amount END, r.card_currency, r.entry_id,
                flagged, p_client);
        END IF;
    END IF;

    IF new_key THEN  -- the key's answer is the posting, rendered by the same code the first time and later
        INSERT INTO idempotency_keys (merchant_id, principal_id, key, request_hash, posting)
        VALUES (p_merchant_id, a.principal_id, p_idempotency_key, p_request_hash, to_jsonb(r));
    END IF;
    a.outcome := r.outcome; a.entry_id := r.entry_id; a.entry_amount := r.entry_amount;
    a.requested := r.requested; a.card_id := r.card_id; a.card_state := r.card_state;
    a.card_balance := r.card_balance; a.card_currency := r.card_currency;
    a.card_expires_at := r.card_expires_at; a.refundable := r.refundable; a.created_at := r.created_at;
    RETURN a;
END $$;

-- The redemptions of a batch in the order given (the caller orders them by card, so that two batches lock
-- the cards they share in the same order), in one statement and so one transaction and one commit. No item
-- runs in a subtransaction of its own: one per item cost a fifth of the till's speed (a subtransaction
-- each, and a MultiXact each time the next item of the batch locked the same card). A batch that fails
-- (it lost a race to another batch, or met an error) is undone whole, and the caller sends each of its
-- redemptions again alone (value/redemption.py).
CREATE OR REPLACE FUNCTION redeem_requests(
    p_token_kinds text[], p_merchant_ids text[], p_token_hashes bytea[], p_clients text[],
    p_idempotency_keys text[], p_request_hashes bytea[],
    p_refused text[], p_kids text[], p_card_ids text[], p_payload_generations integer[], p_code_hashes bytea[],
    p_code_last4s text[], p_amounts bigint[], p_currencies text[], p_allow_partials boolean[],
    p_references text[], p_limits integer[]
) RETURNS SETOF redemption_answer LANGUAGE plpgsql AS $$
DECLARE
    a redemption_answer;
BEGIN
    FOR i IN 1 .. cardinality(p_token_kinds) LOOP
        a := redeem_request(p_token_kinds[i], p_merchant_ids[i], p_token_hashes[i], p_clients[i],
                            p_idempotency_keys[i], p_request_hashes[i], p_refused[i], p_kids[i],
                            p_card_ids[i], p_payload_generations[i], p_code_hashes[i], p_code_last4s[i],
                            p_amounts[i], p_currencies[i], p_allow_partials[i], p_references[i], p_limits);
        a.item := i;
        RETURN NEXT a;
    END LOOP;
END $$;
