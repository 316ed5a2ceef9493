-- Claims a key for a request: true, or false when the key has an answer already (a concurrent claimant
-- is waited for until it commits). The answer is written later in the same transaction.
CREATE OR REPLACE FUNCTION claim_idempotency_key(p_merchant_id text, p_principal_id text, p_key text,
                                      p_request_hash bytea)
RETURNS boolean LANGUAGE sql AS $$
    WITH claimed AS (
        INSERT INTO idempotency_keys (merchant_id, principal_id, key, request_hash)
        VALUES (p_merchant_id, p_principal_id, p_key, p_request_hash)
        ON CONFLICT DO NOTHING RETURNING true)
    SELECT EXISTS (SELECT 1 FROM claimed)
$$;
