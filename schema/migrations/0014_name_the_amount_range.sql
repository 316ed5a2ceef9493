-- The card maximum, named once (issue 16): 1,000,000.00 in minor units. Every balance and every amount a
-- client may ask for is within it; giftcards/value/ledger.py's MAX_AMOUNT is tested against it.
--
--   * card_maximum(): the number, for the domains below and for post_activity's balance_limit_exceeded;
--   * card_balance: what a card may hold, from nothing to the maximum (the constraint names are the ones
--     the cards table had);
--   * amount: what may be asked for (an issue, a price, a limit): at least one minor unit.
--
-- The columns that spelt the range out take the domains, and their own range checks go. Changing a column
-- to a domain with constraints rewrites the table (cards, stores, designs, customise_sessions, gifts); the
-- ledger keeps bigint (a signed amount, and balance_after follows the card by the chain).

CREATE FUNCTION card_maximum() RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN 100000000;

CREATE DOMAIN card_balance AS bigint
    CONSTRAINT card_balance_not_negative CHECK (VALUE >= 0)
    CONSTRAINT card_balance_within_maximum CHECK (VALUE <= card_maximum());

CREATE DOMAIN amount AS card_balance
    CONSTRAINT amount_positive CHECK (VALUE > 0);

-- A column a trigger names cannot change its type; schema/functions/ledger.sql makes the trigger again
-- in this same transaction.
DROP TRIGGER IF EXISTS card_balance_matches_ledger ON cards;
ALTER TABLE cards
    DROP CONSTRAINT card_initial_amount_in_range,
    DROP CONSTRAINT card_balance_not_negative,
    DROP CONSTRAINT card_balance_within_maximum,
    ALTER COLUMN initial_amount TYPE amount,
    ALTER COLUMN balance TYPE card_balance;

ALTER TABLE stores
    DROP CONSTRAINT store_redeem_limit_range,
    ALTER COLUMN redeem_limit TYPE amount;

ALTER TABLE designs
    DROP CONSTRAINT design_denominations_range,
    DROP CONSTRAINT design_min_amount_range,
    DROP CONSTRAINT design_max_amount_range,
    ALTER COLUMN denominations DROP DEFAULT,
    ALTER COLUMN denominations TYPE amount[],
    ALTER COLUMN denominations SET DEFAULT '{}',
    ALTER COLUMN min_amount TYPE amount,
    ALTER COLUMN max_amount TYPE amount;

ALTER TABLE customise_sessions
    DROP CONSTRAINT customise_session_max_amount_range,
    ALTER COLUMN max_amount TYPE amount;

ALTER TABLE gifts
    DROP CONSTRAINT gift_amount_range,
    ALTER COLUMN amount TYPE amount;
