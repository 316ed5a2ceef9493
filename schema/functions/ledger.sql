-- The ledger's rules, which hold even for code that bypasses the application (its tables, the money
-- constraints and the ledger_posting type: schema/migrations/0002 and 0014):
--   * the ledger is append-only (append_only.sql);
--   * each entry's balance_after equals the previous balance_after plus its amount (a chain that starts
--     with the card's single `issue` entry), so balance_after of the last entry is the sum of the ledger;
--   * at commit, a card's balance equals the balance_after of its last entry;
-- and post_activity, the one write path for value.

CREATE OR REPLACE FUNCTION ledger_check_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    previous bigint;
BEGIN
    IF NEW.kind = 'issue' THEN
        -- The first entry; ledger_one_issue_per_card keeps it the only one.
        IF NEW.balance_after <> NEW.amount THEN
            RAISE EXCEPTION 'issue entry must leave balance_after = amount'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_chain';
        END IF;
        RETURN NEW;
    END IF;
    SELECT balance_after INTO previous FROM ledger_entries
     WHERE merchant_id = NEW.merchant_id AND card_id = NEW.card_id
     ORDER BY id DESC LIMIT 1;
    IF NOT FOUND OR previous + NEW.amount <> NEW.balance_after THEN
        RAISE EXCEPTION 'entry breaks the balance chain of card % (previous %, amount %, balance_after %)',
            NEW.card_id, previous, NEW.amount, NEW.balance_after
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_chain';
    END IF;
    RETURN NEW;
END $$;
-- Bulk issuance writes 100,000 `issue` entries in one statement. For an issue entry the chain check only
-- asks that balance_after equal amount: the WHEN clause skips the call for exactly the entries it would
-- have passed.
CREATE OR REPLACE TRIGGER ledger_chain BEFORE INSERT ON ledger_entries
    FOR EACH ROW WHEN (NEW.kind <> 'issue' OR NEW.balance_after <> NEW.amount)
    EXECUTE FUNCTION ledger_check_chain();

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
-- A constraint trigger cannot be replaced in place.
DROP TRIGGER IF EXISTS card_balance_matches_ledger ON cards;
CREATE CONSTRAINT TRIGGER card_balance_matches_ledger AFTER INSERT OR UPDATE OF balance ON cards
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION card_check_balance_matches_ledger();

-- The one write path for value. It locks the card row, applies the rules of `kind`, updates the card and
-- appends the entry, all in one statement (one round trip). A refusal is returned as `outcome` (a stable
-- problem code) with the card's figures, never half-applied.
--   p_amount: the positive magnitude for issue/load/redeem/refund; signed for adjust; ignored otherwise.
--   p_payload_generation: the generation of the QR payload that names the card (NULL when the card is
--   named otherwise); a payload of another generation is refused under the card's lock.
CREATE OR REPLACE FUNCTION post_activity(
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
        IF c.balance + delta > card_maximum() THEN r.outcome := 'balance_limit_exceeded'; RETURN r; END IF;
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
        IF c.balance + p_amount > card_maximum() THEN r.outcome := 'balance_limit_exceeded'; RETURN r; END IF;
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
