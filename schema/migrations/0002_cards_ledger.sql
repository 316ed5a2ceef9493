-- was sha256 1f37265d328235155eeec5e2d56d8ecfb606362bae0971a5ec885a3741c00d9e
-- (as applied until its functions and triggers moved to schema/functions/: append_only, ledger)
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

-- The triggers that hold the ledger's rules, and post_activity, the one write path for value:
-- schema/functions/ledger.sql and append_only.sql.

-- What post_activity answers: a refusal is `outcome` (a stable problem code) with the card's figures.
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

