-- Merchants are the tenant boundary. Every merchant-scoped table carries merchant_id as the first
-- column of its primary key, so the schema could be distributed by merchant (Citus) without change.

CREATE TABLE merchants (
    id          text PRIMARY KEY CONSTRAINT merchant_id_shape CHECK (id ~ '^mer_[a-z2-7]{16}$'),
    name        text NOT NULL CONSTRAINT merchant_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Back-office API keys: shown once, stored as a keyed hash (HMAC), revocable.
CREATE TABLE api_keys (
    merchant_id  text NOT NULL REFERENCES merchants (id),
    id           text NOT NULL,
    token_hash   bytea NOT NULL CONSTRAINT api_key_hash_length CHECK (length(token_hash) = 32),
    token_last4  text NOT NULL,
    label        text NOT NULL DEFAULT '' CONSTRAINT api_key_label_length CHECK (char_length(label) <= 200),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    PRIMARY KEY (merchant_id, id),
    CONSTRAINT api_key_hash_unique UNIQUE (merchant_id, token_hash)
);

-- Ed25519 keys that sign QR payloads. One signs (active); older ones verify until retired.
-- A service-wide reference table (it would be replicated, not distributed).
CREATE TABLE signing_keys (
    kid                 text PRIMARY KEY CONSTRAINT signing_key_kid_shape CHECK (kid ~ '^[0-9a-f]{8}$'),
    public_key          bytea NOT NULL CONSTRAINT signing_key_public_length CHECK (length(public_key) = 32),
    private_key_sealed  bytea NOT NULL,
    state               text NOT NULL CONSTRAINT signing_key_state_known
                            CHECK (state IN ('active', 'verify_only', 'retired')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    retired_at          timestamptz
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true)) WHERE state = 'active';

-- Idempotency: the first outcome of a mutating call, replayed for a retry with the same key.
-- The row is inserted in the same transaction as the work, so a crash leaves neither behind and a
-- concurrent duplicate waits on the unique key until the first one commits.
CREATE TABLE idempotency_keys (
    merchant_id   text NOT NULL,
    principal_id  text NOT NULL,
    key           text NOT NULL,
    request_hash  bytea NOT NULL,
    status        integer,
    body          bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, principal_id, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
