-- was sha256 25de07dbed99454acb3a39fd2a4afa70f3b0412a523681f990f5d44baf0e6c6b
-- (as applied until its functions and triggers moved to schema/functions/append_only.sql)
-- Stores, their staff redemption terminals, the staff audit log and the failed-lookup counters.
--
-- A terminal holds one long-lived token (stored as an HMAC, like API keys) which it gets by exchanging a
-- short-lived, single-use enrollment code. The staff log is append-only, like the ledger.

CREATE TABLE stores (
    merchant_id   text NOT NULL REFERENCES merchants (id),
    id            text NOT NULL CONSTRAINT store_id_shape CHECK (id ~ '^store_[a-z2-7]{16}$'),
    name          text NOT NULL CONSTRAINT store_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    -- The most a clerk terminal may take in one redemption (minor units); NULL = no limit.
    redeem_limit  bigint CONSTRAINT store_redeem_limit_range CHECK (redeem_limit BETWEEN 1 AND 100000000),
    -- The store's own day decides which redemptions a clerk may still refund.
    timezone      text NOT NULL DEFAULT 'Asia/Shanghai'
                      CONSTRAINT store_timezone_length CHECK (char_length(timezone) BETWEEN 1 AND 64),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id)
);

CREATE TABLE terminals (
    merchant_id   text NOT NULL,
    id            text NOT NULL CONSTRAINT terminal_id_shape CHECK (id ~ '^term_[a-z2-7]{16}$'),
    store_id      text NOT NULL,
    label         text NOT NULL CONSTRAINT terminal_label_length CHECK (char_length(label) BETWEEN 1 AND 100),
    role          text NOT NULL CONSTRAINT terminal_role_known CHECK (role IN ('clerk', 'manager')),
    -- NULL until enrolled and after a rotation; kept after revocation, so attempts with it are logged.
    token_hash    bytea CONSTRAINT terminal_token_hash_length CHECK (length(token_hash) = 32),
    token_last4   text,
    enrolled_at   timestamptz,
    revoked_at    timestamptz,
    flagged_at    timestamptz,  -- last time its failed lookups tripped the rate limit
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, store_id) REFERENCES stores (merchant_id, id),
    CONSTRAINT terminal_token_hash_unique UNIQUE (merchant_id, token_hash),
    CONSTRAINT terminal_token_last4_with_hash CHECK ((token_hash IS NULL) = (token_last4 IS NULL))
);
CREATE INDEX terminals_by_store ON terminals (merchant_id, store_id, created_at);

-- One-time enrollment codes. The device knows only the code, so it is found by its keyed hash alone
-- (unique across merchants); exchanging it is one UPDATE … WHERE used_at IS NULL AND expires_at > now().
CREATE TABLE terminal_enrollments (
    merchant_id  text NOT NULL,
    terminal_id  text NOT NULL,
    code_hash    bytea NOT NULL CONSTRAINT terminal_enrollment_hash_length CHECK (length(code_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    PRIMARY KEY (merchant_id, terminal_id, code_hash),
    FOREIGN KEY (merchant_id, terminal_id) REFERENCES terminals (merchant_id, id),
    CONSTRAINT terminal_enrollment_expires_after_creation CHECK (expires_at > created_at),
    CONSTRAINT terminal_enrollment_short_lived CHECK (expires_at <= created_at + interval '1 day')
);
CREATE UNIQUE INDEX terminal_enrollments_by_code ON terminal_enrollments (code_hash);

-- A ledger entry made by a terminal names a real store of the same merchant.
ALTER TABLE ledger_entries
    ADD CONSTRAINT ledger_store_exists FOREIGN KEY (merchant_id, store_id) REFERENCES stores (merchant_id, id);
CREATE INDEX ledger_by_terminal ON ledger_entries (merchant_id, actor_id, created_at)
    WHERE actor_type = 'terminal';

-- Everything a terminal does or tries, whatever the outcome. Never a full card code or token: at most
-- the last four symbols of what was typed.
CREATE TABLE staff_log (
    merchant_id     text NOT NULL REFERENCES merchants (id),
    id              bigint GENERATED ALWAYS AS IDENTITY,
    terminal_id     text NOT NULL,
    store_id        text NOT NULL,
    action          text NOT NULL CONSTRAINT staff_log_action_known
                        CHECK (action IN ('authenticate', 'enroll', 'lookup', 'redeem', 'refund', 'block')),
    outcome         text NOT NULL CONSTRAINT staff_log_outcome_shape CHECK (outcome ~ '^[a-z_]{2,40}$'),
    card_id         text,
    code_last4      text CONSTRAINT staff_log_code_last4_short CHECK (char_length(code_last4) <= 4),
    amount          bigint,
    currency        text,
    activity_id     bigint,
    flagged         boolean NOT NULL DEFAULT false,
    client_address  text CONSTRAINT staff_log_client_length CHECK (char_length(client_address) <= 100),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, terminal_id) REFERENCES terminals (merchant_id, id)
);
CREATE INDEX staff_log_by_terminal ON staff_log (merchant_id, terminal_id, id);
CREATE INDEX staff_log_by_store ON staff_log (merchant_id, store_id, id);

-- Failed code lookups and enrollment attempts, one row each, per subject ('terminal:<id>',
-- 'address:<ip>', 'enroll:<ip>'). A service-wide table: an address is not a merchant's. Kept in the
-- database so the limit holds across server processes; rows older than the window are purged.
CREATE TABLE failed_attempts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject     text NOT NULL CONSTRAINT failed_attempt_subject_length CHECK (char_length(subject) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX failed_attempts_by_subject ON failed_attempts (subject, created_at);
