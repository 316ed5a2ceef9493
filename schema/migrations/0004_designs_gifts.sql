-- Occasion designs (with limited stock and a sale window), uploaded images, gifts with one-time claim
-- links, the owner's card-page access tokens, and customise sessions (issue 5).
--
-- What the database guarantees here:
--   * a limited design never sells more than its stock (designs.sold <= stock, a named CHECK; the
--     purchase increments `sold` with one conditional UPDATE in the card's own transaction);
--   * a card is on its way in at most one gift at a time (a partial unique index);
--   * a gift's state and its timestamps agree (named CHECKs), and a claimed gift names its recipient;
--   * link secrets and access tokens are stored only as keyed hashes (plus, for a gift link, sealed so
--     the gifter can share it again), each hash unique.

CREATE TABLE images (
    merchant_id  text NOT NULL REFERENCES merchants (id),
    id           text NOT NULL CONSTRAINT image_id_shape CHECK (id ~ '^img_[a-z2-7]{16}$'),
    purpose      text NOT NULL CONSTRAINT image_purpose_known CHECK (purpose IN ('cover', 'photo')),
    media_type   text NOT NULL CONSTRAINT image_media_type_known CHECK (media_type IN ('image/jpeg', 'image/png')),
    width        integer NOT NULL CONSTRAINT image_width_range CHECK (width BETWEEN 1 AND 1600),
    height       integer NOT NULL CONSTRAINT image_height_range CHECK (height BETWEEN 1 AND 1600),
    data         bytea NOT NULL CONSTRAINT image_data_size CHECK (length(data) BETWEEN 1 AND 5242880),
    sha256       bytea NOT NULL CONSTRAINT image_sha256_length CHECK (length(sha256) = 32),
    session_id   text,  -- the customise session it was uploaded through, if any
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id)
);
CREATE INDEX images_unused_photos ON images (created_at) WHERE purpose = 'photo';

CREATE TABLE designs (
    merchant_id         text NOT NULL REFERENCES merchants (id),
    id                  text NOT NULL CONSTRAINT design_id_shape CHECK (id ~ '^dsn_[a-z2-7]{16}$'),
    name                text NOT NULL CONSTRAINT design_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    occasion            text NOT NULL CONSTRAINT design_occasion_known CHECK (occasion IN (
                            'qixi', '520', 'valentines', 'spring_festival', 'birthday', 'thank_you', 'other')),
    background_color    text NOT NULL CONSTRAINT design_background_color_shape CHECK (background_color ~ '^#[0-9a-f]{6}$'),
    accent_color        text NOT NULL CONSTRAINT design_accent_color_shape CHECK (accent_color ~ '^#[0-9a-f]{6}$'),
    text_color          text NOT NULL CONSTRAINT design_text_color_shape CHECK (text_color ~ '^#[0-9a-f]{6}$'),
    cover_image_id      text,
    currency            text NOT NULL CONSTRAINT design_currency_iso4217 CHECK (currency ~ '^[A-Z]{3}$'),
    denominations       bigint[] NOT NULL DEFAULT '{}'
                            CONSTRAINT design_denominations_count CHECK (cardinality(denominations) <= 12)
                            CONSTRAINT design_denominations_range CHECK (
                                0 < ALL (denominations) AND 100000000 >= ALL (denominations)),
    min_amount          bigint CONSTRAINT design_min_amount_range CHECK (min_amount BETWEEN 1 AND 100000000),
    max_amount          bigint CONSTRAINT design_max_amount_range CHECK (max_amount BETWEEN 1 AND 100000000),
    stock               integer CONSTRAINT design_stock_not_negative CHECK (stock >= 0),
    sold                integer NOT NULL DEFAULT 0 CONSTRAINT design_sold_not_negative CHECK (sold >= 0),
    sale_starts_at      timestamptz,
    sale_ends_at        timestamptz,
    card_validity_days  integer CONSTRAINT design_card_validity_range CHECK (card_validity_days BETWEEN 1 AND 3660),
    active              boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, cover_image_id) REFERENCES images (merchant_id, id),
    CONSTRAINT design_sold_within_stock CHECK (stock IS NULL OR sold <= stock),
    CONSTRAINT design_free_range_complete CHECK ((min_amount IS NULL) = (max_amount IS NULL)),
    CONSTRAINT design_free_range_ordered CHECK (min_amount <= max_amount),
    CONSTRAINT design_has_amounts CHECK (cardinality(denominations) > 0 OR min_amount IS NOT NULL),
    CONSTRAINT design_sale_window_ordered CHECK (sale_starts_at < sale_ends_at)
);
CREATE INDEX designs_by_creation ON designs (merchant_id, created_at DESC, id DESC);

-- A customise session: the shop's backend vouches for a gifter (owner id) and authorises one purchase
-- of at most max_amount; the gifter completes it on the customise page. Single use.
CREATE TABLE customise_sessions (
    merchant_id   text NOT NULL REFERENCES merchants (id),
    id            text NOT NULL CONSTRAINT customise_session_id_shape CHECK (id ~ '^cus_[a-z2-7]{16}$'),
    token_hash    bytea NOT NULL CONSTRAINT customise_session_hash_length CHECK (length(token_hash) = 32),
    api_key_id    text NOT NULL,
    owner_id      text NOT NULL CONSTRAINT customise_session_owner_length CHECK (char_length(owner_id) BETWEEN 1 AND 128),
    sender_name   text CONSTRAINT customise_session_sender_length CHECK (char_length(sender_name) BETWEEN 1 AND 40),
    currency      text NOT NULL CONSTRAINT customise_session_currency_iso4217 CHECK (currency ~ '^[A-Z]{3}$'),
    max_amount    bigint NOT NULL CONSTRAINT customise_session_max_amount_range CHECK (max_amount BETWEEN 1 AND 100000000),
    reference     text CONSTRAINT customise_session_reference_length CHECK (char_length(reference) BETWEEN 1 AND 200),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz,
    gift_id       text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    CONSTRAINT customise_session_token_unique UNIQUE (token_hash),
    CONSTRAINT customise_session_used_has_gift CHECK ((used_at IS NULL) = (gift_id IS NULL))
);

CREATE TABLE gifts (
    merchant_id      text NOT NULL REFERENCES merchants (id),
    id               text NOT NULL CONSTRAINT gift_id_shape CHECK (id ~ '^gift_[a-z2-7]{16}$'),
    card_id          text NOT NULL,
    design_id        text,
    photo_id         text,
    gifter_id        text NOT NULL CONSTRAINT gift_gifter_length CHECK (char_length(gifter_id) BETWEEN 1 AND 128),
    recipient_id     text CONSTRAINT gift_recipient_length CHECK (char_length(recipient_id) BETWEEN 1 AND 128),
    sender_name      text NOT NULL CONSTRAINT gift_sender_name_length CHECK (char_length(sender_name) BETWEEN 1 AND 40),
    recipient_name   text NOT NULL CONSTRAINT gift_recipient_name_length CHECK (char_length(recipient_name) BETWEEN 1 AND 40),
    message          text NOT NULL DEFAULT '' CONSTRAINT gift_message_length CHECK (char_length(message) <= 200),
    amount           bigint NOT NULL CONSTRAINT gift_amount_range CHECK (amount BETWEEN 1 AND 100000000),
    currency         text NOT NULL CONSTRAINT gift_currency_iso4217 CHECK (currency ~ '^[A-Z]{3}$'),
    claim_hash       bytea NOT NULL CONSTRAINT gift_claim_hash_length CHECK (length(claim_hash) = 32),
    claim_sealed     bytea NOT NULL,
    state            text NOT NULL DEFAULT 'waiting' CONSTRAINT gift_state_known
                         CHECK (state IN ('waiting', 'claimed', 'revoked', 'returned')),
    opens_at         timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    claimed_at       timestamptz,
    revoked_at       timestamptz,
    returned_at      timestamptz,
    reference        text CONSTRAINT gift_reference_length CHECK (char_length(reference) BETWEEN 1 AND 200),
    previous_gift_id text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, card_id) REFERENCES cards (merchant_id, id),
    FOREIGN KEY (merchant_id, design_id) REFERENCES designs (merchant_id, id),
    FOREIGN KEY (merchant_id, photo_id) REFERENCES images (merchant_id, id),
    FOREIGN KEY (merchant_id, previous_gift_id) REFERENCES gifts (merchant_id, id),
    CONSTRAINT gift_claim_hash_unique UNIQUE (claim_hash),
    CONSTRAINT gift_opens_before_expiry CHECK (opens_at < expires_at),
    CONSTRAINT gift_claimed_consistent CHECK (
        (state = 'claimed') = (claimed_at IS NOT NULL) AND (claimed_at IS NULL) = (recipient_id IS NULL)),
    CONSTRAINT gift_revoked_consistent CHECK ((state = 'revoked') = (revoked_at IS NOT NULL)),
    CONSTRAINT gift_returned_consistent CHECK ((state = 'returned') = (returned_at IS NOT NULL))
);
CREATE UNIQUE INDEX gifts_one_waiting_per_card ON gifts (merchant_id, card_id) WHERE state = 'waiting';
CREATE UNIQUE INDEX gifts_reference_unique ON gifts (merchant_id, reference) WHERE reference IS NOT NULL;
CREATE INDEX gifts_by_card ON gifts (merchant_id, card_id, created_at DESC);
CREATE INDEX gifts_by_gifter ON gifts (merchant_id, gifter_id, created_at DESC, id DESC);
CREATE INDEX gifts_by_recipient ON gifts (merchant_id, recipient_id, created_at DESC, id DESC)
    WHERE recipient_id IS NOT NULL;
CREATE INDEX gifts_due_to_return ON gifts (expires_at) WHERE state = 'waiting';

-- The owner's access to the card page (/c/{token}): valid while not revoked and while the card still
-- belongs to the same owner. Passing the card on revokes every token of the card.
CREATE TABLE card_access (
    merchant_id  text NOT NULL REFERENCES merchants (id),
    id           text NOT NULL CONSTRAINT card_access_id_shape CHECK (id ~ '^cax_[a-z2-7]{16}$'),
    card_id      text NOT NULL,
    owner_id     text NOT NULL CONSTRAINT card_access_owner_length CHECK (char_length(owner_id) BETWEEN 1 AND 128),
    token_hash   bytea NOT NULL CONSTRAINT card_access_hash_length CHECK (length(token_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, card_id) REFERENCES cards (merchant_id, id),
    CONSTRAINT card_access_token_unique UNIQUE (token_hash)
);
CREATE INDEX card_access_live_by_card ON card_access (merchant_id, card_id) WHERE revoked_at IS NULL;
