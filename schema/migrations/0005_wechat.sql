-- was sha256 7cbdcf1971346d4a450bf0740354db926fa78597be645fb5caa43487679acb53
-- (as applied until its functions and triggers moved to schema/functions/wechat_outbox.sql)
-- 0005: WeChat card wallet sync (issue 6).
--
-- What the database guarantees here:
--   * every ledger entry of a card that sits in a WeChat wallet writes its wallet update to the outbox in
--     the same transaction (trigger `wechat_outbox_feed`), whatever code path posted the entry;
--   * per card, outbox ids grow in commit order: every insert for a card happens under that card's row
--     lock (post_activity locks it; the callback handler locks it before it enqueues a resync);
--   * a WeChat event is applied at most once (`wechat_events` primary key).

CREATE TABLE wechat_accounts (
    merchant_id            text NOT NULL REFERENCES merchants (id),
    appid                  text NOT NULL CONSTRAINT wechat_appid_shape CHECK (appid ~ '^wx[0-9a-f]{16}$'),
    secret_sealed          bytea NOT NULL,
    callback_token_sealed  bytea NOT NULL,
    aes_key_sealed         bytea,
    base_url               text NOT NULL
                               CONSTRAINT wechat_base_url_shape CHECK (base_url ~ '^https?://[^[:space:]]+/$'),
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id)
);

-- The access_token and the wx_card api_ticket, shared by every process (sealed: they are credentials).
CREATE TABLE wechat_credentials (
    merchant_id   text NOT NULL REFERENCES wechat_accounts (merchant_id) ON DELETE CASCADE,
    kind          text NOT NULL CONSTRAINT wechat_credential_kind_known CHECK (kind IN ('access_token', 'wx_card')),
    value_sealed  bytea,
    expires_at    timestamptz NOT NULL DEFAULT '-infinity',
    fetched_at    timestamptz,
    PRIMARY KEY (merchant_id, kind)
);

-- A design (or 'default', for cards without a design) as a WeChat card definition.
CREATE TABLE wechat_cards (
    merchant_id     text NOT NULL REFERENCES merchants (id),
    design_key      text NOT NULL CONSTRAINT wechat_card_design_key_length CHECK (char_length(design_key) BETWEEN 1 AND 64),
    wechat_card_id  text NOT NULL CONSTRAINT wechat_card_id_length CHECK (char_length(wechat_card_id) BETWEEN 1 AND 64),
    title           text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, design_key),
    CONSTRAINT wechat_card_id_unique UNIQUE (merchant_id, wechat_card_id)
);

-- One of our cards, deposited as a code of a WeChat card, and where it is in WeChat's wallet.
CREATE TABLE wechat_card_codes (
    merchant_id     text NOT NULL,
    card_id         text NOT NULL,
    wechat_card_id  text NOT NULL,
    code_hash       bytea NOT NULL CONSTRAINT wechat_code_hash_length CHECK (length(code_hash) = 32),
    code_sealed     bytea NOT NULL,
    wallet_state    text NOT NULL CONSTRAINT wechat_wallet_state_known CHECK (wallet_state IN (
                        'deposited', 'in_wallet', 'gifting', 'deleted', 'consumed', 'unavailable')),
    openid          text CONSTRAINT wechat_openid_length CHECK (char_length(openid) BETWEEN 1 AND 128),
    gifting_to      text CONSTRAINT wechat_gifting_to_length CHECK (char_length(gifting_to) BETWEEN 1 AND 128),
    qr_url_sealed   bytea,  -- the last card/qrcode/create URL: whoever scans it gets the card
    qr_expires_at   timestamptz,
    deposited_at    timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, card_id),
    FOREIGN KEY (merchant_id, card_id) REFERENCES cards (merchant_id, id),
    FOREIGN KEY (merchant_id, wechat_card_id) REFERENCES wechat_cards (merchant_id, wechat_card_id),
    CONSTRAINT wechat_code_unique UNIQUE (merchant_id, wechat_card_id, code_hash)
);

-- What WeChat must end up showing for a card, one row per change, delivered in id order per card.
CREATE TABLE wechat_outbox (
    merchant_id      text NOT NULL,
    id               bigint GENERATED ALWAYS AS IDENTITY,
    card_id          text NOT NULL,
    ledger_entry_id  bigint,
    entry_kind       text NOT NULL CONSTRAINT wechat_outbox_kind_known CHECK (entry_kind IN (
                         'load', 'redeem', 'refund', 'adjust', 'expire', 'deactivate', 'sync')),
    amount           bigint NOT NULL,
    balance          bigint NOT NULL CONSTRAINT wechat_outbox_balance_not_negative CHECK (balance >= 0),
    currency         text NOT NULL,
    finish           text CONSTRAINT wechat_outbox_finish_known CHECK (finish IN ('consume', 'unavailable')),
    state            text NOT NULL DEFAULT 'pending'
                         CONSTRAINT wechat_outbox_state_known
                         CHECK (state IN ('pending', 'delivered', 'parked', 'skipped')),
    attempts         integer NOT NULL DEFAULT 0 CONSTRAINT wechat_outbox_attempts_not_negative CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text CONSTRAINT wechat_outbox_error_length CHECK (char_length(last_error) <= 300),
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    parked_at        timestamptz,
    replayed_at      timestamptz,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, card_id) REFERENCES cards (merchant_id, id),
    FOREIGN KEY (merchant_id, ledger_entry_id) REFERENCES ledger_entries (merchant_id, id),
    CONSTRAINT wechat_outbox_sync_has_no_entry CHECK ((entry_kind = 'sync') = (ledger_entry_id IS NULL))
);
CREATE INDEX wechat_outbox_due ON wechat_outbox (id) WHERE state = 'pending';
CREATE INDEX wechat_outbox_open_by_card ON wechat_outbox (merchant_id, card_id, id)
    WHERE state IN ('pending', 'parked');
CREATE INDEX wechat_outbox_by_card ON wechat_outbox (merchant_id, card_id, id);
CREATE INDEX wechat_outbox_parked ON wechat_outbox (merchant_id, id) WHERE state = 'parked';

-- Events applied, for dedupe of WeChat's re-pushes: (FromUserName, CreateTime, Event, UserCardCode).
-- The code is stored as a keyed hash: it is the card's bearer secret.
CREATE TABLE wechat_events (
    merchant_id  text NOT NULL REFERENCES merchants (id),
    from_user    text NOT NULL CONSTRAINT wechat_event_from_length CHECK (char_length(from_user) BETWEEN 1 AND 128),
    create_time  bigint NOT NULL,
    event        text NOT NULL CONSTRAINT wechat_event_name_length CHECK (char_length(event) BETWEEN 1 AND 64),
    code_hash    bytea NOT NULL CONSTRAINT wechat_event_code_hash_length CHECK (length(code_hash) = 32),
    card_id      text,
    outcome      text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, from_user, create_time, event, code_hash)
);
CREATE INDEX wechat_events_by_card ON wechat_events (merchant_id, card_id, received_at) WHERE card_id IS NOT NULL;

-- Plain-mode signatures cover only (token, timestamp, nonce), not the body: a (timestamp, nonce) pair is
-- bound to the first body seen with it, so a captured signature cannot carry another body.
CREATE TABLE wechat_callback_nonces (
    merchant_id  text NOT NULL REFERENCES merchants (id),
    nonce        text NOT NULL,
    timestamp    bigint NOT NULL,
    body_hash    bytea NOT NULL,
    seen_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, nonce, timestamp)
);
CREATE INDEX wechat_callback_nonces_age ON wechat_callback_nonces (seen_at);

-- What WeChat said that does not agree with the ledger; money never moves because of it.
CREATE TABLE wechat_discrepancies (
    merchant_id  text NOT NULL,
    id           bigint GENERATED ALWAYS AS IDENTITY,
    card_id      text NOT NULL,
    kind         text NOT NULL CONSTRAINT wechat_discrepancy_kind_known CHECK (kind IN (
                     'consumed_in_wechat_with_balance', 'wallet_update_refused_consumed')),
    balance      bigint NOT NULL,
    detail       text NOT NULL CONSTRAINT wechat_discrepancy_detail_length CHECK (char_length(detail) <= 300),
    created_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, card_id) REFERENCES cards (merchant_id, id)
);
CREATE INDEX wechat_discrepancies_open ON wechat_discrepancies (merchant_id, id) WHERE resolved_at IS NULL;
