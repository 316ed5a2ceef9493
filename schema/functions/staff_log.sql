-- One row of the staff log: written by the redemption statement and by giftcards/stores/staff_log.py alike.

CREATE OR REPLACE FUNCTION record_staff_action(
    p_merchant_id text, p_terminal_id text, p_store_id text, p_action text, p_outcome text,
    p_card_id text, p_code_last4 text, p_amount bigint, p_currency text, p_activity_id bigint,
    p_flagged boolean, p_client text
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO staff_log (merchant_id, terminal_id, store_id, action, outcome, card_id, code_last4, amount,
                           currency, activity_id, flagged, client_address)
    VALUES (p_merchant_id, p_terminal_id, p_store_id, p_action, p_outcome, p_card_id, p_code_last4, p_amount,
            p_currency, p_activity_id, p_flagged, left(p_client, 100))
$$;
