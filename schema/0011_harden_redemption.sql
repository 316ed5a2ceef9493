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

-- 16 bits, as signed. A payload could only come back after 65,536 more changes of holder or code, each
-- made by whoever holds the card then.
CREATE FUNCTION next_payload_generation(generation integer) RETURNS integer
    LANGUAGE sql IMMUTABLE AS $$ SELECT (generation + 1) % 65536 $$;

CREATE FUNCTION card_next_payload_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.payload_generation := next_payload_generation(OLD.payload_generation);
    RETURN NEW;
END $$;
-- Only an UPDATE that names owner_id or code_hash fires it, and WHEN tests the values without a function
-- call: a redemption's balance update pays nothing for it.
CREATE TRIGGER card_passed_on BEFORE UPDATE OF owner_id, code_hash ON cards
    FOR EACH ROW WHEN (OLD.owner_id IS DISTINCT FROM NEW.owner_id OR OLD.code_hash IS DISTINCT FROM NEW.code_hash)
    EXECUTE FUNCTION card_next_payload_generation();

-- post_activity as in 0002, with p_payload_generation: the generation of the QR payload that names the
-- card (NULL when the card is named otherwise).
DROP FUNCTION post_activity(text, text, bytea, text, bigint, text, boolean, bigint, text, text, text, text,
                            text, text);

CREATE FUNCTION post_activity(
    p_merchant_id text, p_card_id text, p_code_hash bytea, p_kind text, p_amount bigint,
    p_currency text, p_allow_partial boolean, p_refund_of bigint, p_reason text,
    p_actor_type text, p_actor_id text, p_store_id text, p_reference text, p_idempotency_key text,
    p_payload_generation integer DEFAULT NULL
) RETURNS ledger_posting LANGUAGE plpgsql AS $$
DECLARE
    c          cards%ROWTYPE;
    r          ledger_posting;
    delta      bigint := 0;
    new_state  text;
    redeemed   bigint;
    refunded   bigint;
    expired    boolean;
BEGIN
    IF p_card_id IS NOT NULL THEN
        SELECT * INTO c FROM cards WHERE merchant_id = p_merchant_id AND id = p_card_id FOR UPDATE;
    ELSE
        SELECT * INTO c FROM cards WHERE merchant_id = p_merchant_id AND code_hash = p_code_hash FOR UPDATE;
    END IF;
    r.requested := p_amount;
    IF NOT FOUND THEN
        r.outcome := CASE WHEN p_card_id IS NULL THEN 'invalid_code' ELSE 'card_not_found' END;
        RETURN r;
    END IF;
    IF p_payload_generation IS NOT NULL AND p_payload_generation <> c.payload_generation THEN
        r.outcome := 'invalid_qr_payload';  -- before any figure of the card is filled in
        RETURN r;
    END IF;
    r.card_id := c.id; r.card_state := c.state; r.card_balance := c.balance;
    r.card_currency := c.currency; r.card_expires_at := c.expires_at;
    new_state := c.state;
    expired := c.state = 'expired' OR (c.expires_at IS NOT NULL AND c.expires_at <= now());

    IF p_currency IS NOT NULL AND p_currency <> c.currency
       AND p_kind IN ('load', 'redeem', 'refund', 'adjust') THEN
        r.outcome := 'currency_mismatch'; RETURN r;
    END IF;

    CASE p_kind
    WHEN 'redeem', 'load', 'adjust' THEN
        IF c.state = 'deactivated' THEN r.outcome := 'card_deactivated'; RETURN r; END IF;
        IF expired THEN r.outcome := 'card_expired'; RETURN r; END IF;
        IF c.state = 'blocked' THEN r.outcome := 'card_blocked'; RETURN r; END IF;
        IF c.state = 'pending' AND p_kind = 'redeem' THEN r.outcome := 'card_not_active'; RETURN r; END IF;
        IF p_kind = 'redeem' THEN
            delta := -p_amount;
            IF p_amount > c.balance THEN
                IF NOT p_allow_partial OR c.balance = 0 THEN r.outcome := 'insufficient_funds'; RETURN r; END IF;
                delta := -c.balance;
            END IF;
        ELSIF p_kind = 'load' THEN
            delta := p_amount;
        ELSE
            delta := p_amount;
            IF c.balance + delta < 0 THEN r.outcome := 'insufficient_funds'; RETURN r; END IF;
        END IF;
        IF c.balance + delta > 100000000 THEN r.outcome := 'balance_limit_exceeded'; RETURN r; END IF;
    WHEN 'refund' THEN
        SELECT -amount INTO redeemed FROM ledger_entries
         WHERE merchant_id = p_merchant_id AND id = p_refund_of AND card_id = c.id AND kind = 'redeem';
        IF NOT FOUND THEN
            r.outcome := CASE WHEN EXISTS (SELECT 1 FROM ledger_entries
                                            WHERE merchant_id = p_merchant_id AND id = p_refund_of AND card_id = c.id)
                              THEN 'not_a_redemption' ELSE 'activity_not_found' END;
            RETURN r;
        END IF;
        SELECT coalesce(sum(amount), 0) INTO refunded FROM ledger_entries
         WHERE merchant_id = p_merchant_id AND refund_of = p_refund_of;
        r.refundable := redeemed - refunded;
        IF c.state = 'deactivated' THEN r.outcome := 'card_deactivated'; RETURN r; END IF;
        IF expired THEN r.outcome := 'card_expired'; RETURN r; END IF;
        IF p_amount > redeemed - refunded THEN r.outcome := 'refund_exceeds_redemption'; RETURN r; END IF;
        IF c.balance + p_amount > 100000000 THEN r.outcome := 'balance_limit_exceeded'; RETURN r; END IF;
        delta := p_amount;
        r.refundable := redeemed - refunded - p_amount;
    WHEN 'activate' THEN
        IF c.state <> 'pending' THEN r.outcome := 'invalid_state_transition'; RETURN r; END IF;
        IF expired THEN r.outcome := 'card_expired'; RETURN r; END IF;
        new_state := 'active';
    WHEN 'block' THEN
        IF c.state <> 'active' THEN r.outcome := 'invalid_state_transition'; RETURN r; END IF;
        new_state := 'blocked';
    WHEN 'unblock' THEN
        IF c.state <> 'blocked' THEN r.outcome := 'invalid_state_transition'; RETURN r; END IF;
        new_state := 'active';
    WHEN 'deactivate' THEN
        IF c.state IN ('deactivated', 'expired') THEN r.outcome := 'invalid_state_transition'; RETURN r; END IF;
        new_state := 'deactivated';
        delta := -c.balance;
    WHEN 'expire' THEN
        IF c.state NOT IN ('pending', 'active', 'blocked') OR NOT expired THEN
            r.outcome := 'invalid_state_transition'; RETURN r;
        END IF;
        new_state := 'expired';
        delta := -c.balance;
    ELSE
        RAISE EXCEPTION 'post_activity cannot post %', p_kind USING ERRCODE = 'invalid_parameter_value';
    END CASE;

    UPDATE cards SET balance = balance + delta, state = new_state, updated_at = now()
     WHERE merchant_id = p_merchant_id AND id = c.id;
    INSERT INTO ledger_entries (merchant_id, card_id, kind, amount, balance_after, currency, reason, refund_of,
                                actor_type, actor_id, store_id, reference, idempotency_key)
    VALUES (p_merchant_id, c.id, p_kind, delta, c.balance + delta, c.currency, p_reason,
            CASE WHEN p_kind = 'refund' THEN p_refund_of END,
            p_actor_type, p_actor_id, p_store_id, p_reference, p_idempotency_key)
    RETURNING id, created_at INTO r.entry_id, r.created_at;
    r.outcome := 'ok'; r.entry_amount := delta;
    r.card_state := new_state; r.card_balance := c.balance + delta;
    RETURN r;
END $$;

-- redeem_request and redeem_requests as in 0008, with the payload's generation and a limit per subject.
DROP FUNCTION redeem_requests(text[], text[], bytea[], text[], text[], bytea[], text[], text[], bytea[],
                              text[], bigint[], text[], boolean[], text[], integer, integer);
DROP FUNCTION redeem_request(text, text, bytea, text, text, bytea, text, text, bytea, text, bigint, text,
                             boolean, text, integer, integer);

CREATE FUNCTION redeem_request(
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

CREATE FUNCTION redeem_requests(
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
