-- Every ledger entry of a card that sits in a WeChat wallet writes its wallet update to the outbox in the
-- same transaction, whatever code path posted the entry (the tables: schema/migrations/0005). Per card,
-- outbox ids grow in commit order: every insert for a card happens under that card's row lock
-- (post_activity locks it; the callback handler locks it before it enqueues a resync).

CREATE OR REPLACE FUNCTION wechat_outbox_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    wallet text;
BEGIN
    SELECT wallet_state INTO wallet FROM wechat_card_codes
     WHERE merchant_id = NEW.merchant_id AND card_id = NEW.card_id;
    -- Not deposited, or not (or no longer) in anybody's wallet: nothing WeChat could show. The event that
    -- puts the card into a wallet enqueues a full resync under the card lock. A consumed code takes no
    -- update either, but the worker must see the change to report a balance the wallet cannot show.
    IF wallet IS NULL OR wallet NOT IN ('in_wallet', 'gifting', 'consumed') THEN
        RETURN NULL;
    END IF;
    INSERT INTO wechat_outbox (merchant_id, card_id, ledger_entry_id, entry_kind, amount, balance, currency, finish)
    VALUES (NEW.merchant_id, NEW.card_id, NEW.id, NEW.kind, NEW.amount, NEW.balance_after, NEW.currency,
            CASE WHEN NEW.kind IN ('deactivate', 'expire') THEN 'unavailable'
                 WHEN NEW.balance_after = 0 THEN 'consume' END);
    RETURN NULL;
END $$;
-- issue (a new card cannot be deposited yet) and the zero-amount state changes never reach WeChat; the WHEN
-- clause keeps them (and batch issue's COPY) from even calling the function.
CREATE OR REPLACE TRIGGER wechat_outbox_feed AFTER INSERT ON ledger_entries
    FOR EACH ROW WHEN (NEW.kind NOT IN ('issue', 'activate', 'block', 'unblock'))
    EXECUTE FUNCTION wechat_outbox_enqueue();

