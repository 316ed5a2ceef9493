-- Cards and their ledger. The money invariants live here, in named constraints and triggers, so they
-- hold even for code that bypasses the application:
--   * a balance is never negative and never above the card maximum;
--   * the ledger is append-only (UPDATE, DELETE and TRUNCATE are refused);
--   * each entry's balance_after equals the previous balance_after plus its amount (a chain that starts
--     with the card's single `issue` entry), so balance_after of the last entry is the sum of the ledger;
--   * at commit, a card's balance equals the balance_after of its last entry.

CREATE TABLE card_batches (
    merchant_id  text NOT NULL REFERENCES merchants (id),
    id           text NOT NULL,
    count        integer NOT NULL CONSTRAINT card_batch_count_range CHECK (count BETWEEN 1 AND 100000),
    amount       bigint NOT NULL,
    currency     text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id)
);

CREATE TABLE cards (
    merchant_id     text NOT NULL REFERENCES merchants (id),
    id              text NOT NULL CONSTRAINT card_id_shape CHECK (id ~ '^card_[a-z2-7]{16}$'),
    code_hash       bytea NOT NULL CONSTRAINT card_code_hash_length CHECK (length(code_hash) = 32),
    code_sealed     bytea NOT NULL,
    code_last4      text NOT NULL,
    currency        text NOT NULL CONSTRAINT card_currency_iso4217 CHECK (currency ~ '^[A-Z]{3}$'),
    initial_amount  bigint NOT NULL
                        CONSTRAINT card_initial_amount_in_range CHECK (initial_amount BETWEEN 1 AND 100000000),
    balance         bigint NOT NULL
                        CONSTRAINT card_balance_not_negative CHECK (balance >= 0)
                        CONSTRAINT card_balance_within_maximum CHECK (balance <= 100000000),
    state           text NOT NULL CONSTRAINT card_state_known
                        CHECK (state IN ('pending', 'active', 'blocked', 'deactivated', 'expired')),
    expires_at      timestamptz,
    campaign        text CONSTRAINT card_campaign_length CHECK (char_length(campaign) BETWEEN 1 AND 100),
    design_id       text,
    batch_id        text,
    owner_id        text CONSTRAINT card_owner_length CHECK (char_length(owner_id) BETWEEN 1 AND 128),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    CONSTRAINT card_code_unique UNIQUE (merchant_id, code_hash),
    FOREIGN KEY (merchant_id, batch_id) REFERENCES card_batches (merchant_id, id)
) WITH (fillfactor = 80);  -- room on each page so balance updates stay HOT (no index rewritten)
CREATE INDEX cards_by_creation ON cards (merchant_id, created_at DESC, id DESC);
CREATE INDEX cards_due_to_expire ON cards (expires_at)
    WHERE state IN ('pending', 'active', 'blocked') AND expires_at IS NOT NULL;
CREATE INDEX cards_by_owner ON cards (merchant_id, owner_id) WHERE owner_id IS NOT NULL;
CREATE INDEX cards_by_batch ON cards (merchant_id, batch_id, id) WHERE batch_id IS NOT NULL;

CREATE TABLE ledger_entries (
    merchant_id      text NOT NULL,
    id               bigint GENERATED ALWAYS AS IDENTITY,
    card_id          text NOT NULL,
    kind             text NOT NULL CONSTRAINT ledger_kind_known CHECK (kind IN (
                         'issue', 'activate', 'load', 'redeem', 'refund', 'adjust', 'expire',
                         'block', 'unblock', 'deactivate')),
    amount           bigint NOT NULL,
    balance_after    bigint NOT NULL CONSTRAINT ledger_balance_after_not_negative CHECK (balance_after >= 0),
    currency         text NOT NULL,
    reason           text CONSTRAINT ledger_reason_length CHECK (char_length(reason) BETWEEN 1 AND 200),
    refund_of        bigint,
    actor_type       text NOT NULL CONSTRAINT ledger_actor_type_known
                         CHECK (actor_type IN ('api_key', 'terminal', 'system', 'wechat')),
    actor_id         text,
    store_id         text,
    reference        text CONSTRAINT ledger_reference_length CHECK (char_length(reference) <= 200),
    idempotency_key  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, card_id) REFERENCES cards (merchant_id, id),
    FOREIGN KEY (merchant_id, refund_of) REFERENCES ledger_entries (merchant_id, id),
    CONSTRAINT ledger_amount_sign CHECK (CASE
        WHEN kind IN ('issue', 'load', 'refund') THEN amount > 0
        WHEN kind = 'redeem' THEN amount < 0
        WHEN kind = 'adjust' THEN amount <> 0
        WHEN kind IN ('expire', 'deactivate') THEN amount <= 0
        ELSE amount = 0 END),
    CONSTRAINT ledger_refund_names_redemption CHECK ((kind = 'refund') = (refund_of IS NOT NULL)),
    CONSTRAINT ledger_adjust_has_reason CHECK (kind <> 'adjust' OR reason IS NOT NULL)
);
CREATE INDEX ledger_by_card ON ledger_entries (merchant_id, card_id, id);
CREATE INDEX ledger_refunds ON ledger_entries (merchant_id, refund_of) WHERE refund_of IS NOT NULL;
CREATE UNIQUE INDEX ledger_one_issue_per_card ON ledger_entries (merchant_id, card_id) WHERE kind = 'issue';

CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only (% refused)', TG_OP
        USING ERRCODE = 'restrict_violation', CONSTRAINT = 'ledger_append_only';
END $$;
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_append_only_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

CREATE FUNCTION ledger_check_chain() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER ledger_chain BEFORE INSERT ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_check_chain();

CREATE FUNCTION card_check_balance_matches_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    current_balance bigint;
    last_balance bigint;
BEGIN
    -- Deferred to commit: read the row as it is now, not as it was when the event was queued.
    SELECT balance INTO current_balance FROM cards WHERE merchant_id = NEW.merchant_id AND id = NEW.id;
    SELECT balance_after INTO last_balance FROM ledger_entries
     WHERE merchant_id = NEW.merchant_id AND card_id = NEW.id
     ORDER BY id DESC LIMIT 1;
    IF last_balance IS DISTINCT FROM current_balance THEN
        RAISE EXCEPTION 'balance of card % (%) does not match its ledger (%)', NEW.id, current_balance, last_balance
            USING ERRCODE = 'check_violation', CONSTRAINT = 'card_balance_matches_ledger';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER card_balance_matches_ledger AFTER INSERT OR UPDATE OF balance ON cards
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION card_check_balance_matches_ledger();

-- The one write path for value. It locks the card row, applies the rules of `kind`, updates the card and
-- appends the entry, all in one statement (one round trip). A refusal is returned as `outcome` (a stable
-- problem code) with the card's figures, never half-applied.
--   p_amount: the positive magnitude for issue/load/redeem/refund; signed for adjust; ignored otherwise.
CREATE TYPE ledger_posting AS (
    outcome        text,
    entry_id       bigint,
    entry_amount   bigint,
    requested      bigint,
    card_id        text,
    card_state     text,
    card_balance   bigint,
    card_currency  text,
    card_expires_at timestamptz,
    refundable     bigint,
    created_at     timestamptz
);

CREATE FUNCTION post_activity(
    p_merchant_id text, p_card_id text, p_code_hash bytea, p_kind text, p_amount bigint,
    p_currency text, p_allow_partial boolean, p_refund_of bigint, p_reason text,
    p_actor_type text, p_actor_id text, p_store_id text, p_reference text, p_idempotency_key text
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
