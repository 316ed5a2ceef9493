-- A card's payload generation is signed into its QR payloads (giftcards/qr/signing.py). It moves on in the very
-- UPDATE that gives the card another holder or another code, and post_activity refuses a payload of
-- another generation under the card's lock: a payload issued before the card was passed on never spends
-- it, not even racing the transfer. (The column: schema/migrations/0011.)

-- 16 bits, as signed. A payload could only come back after 65,536 more changes of holder or code, each
-- made by whoever holds the card then.
CREATE OR REPLACE FUNCTION next_payload_generation(generation integer) RETURNS integer
    LANGUAGE sql IMMUTABLE AS $$ SELECT (generation + 1) % 65536 $$;

CREATE OR REPLACE FUNCTION card_next_payload_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.payload_generation := next_payload_generation(OLD.payload_generation);
    RETURN NEW;
END $$;
-- Only an UPDATE that names owner_id or code_hash fires it, and WHEN tests the values without a function
-- call: a redemption's balance update pays nothing for it.
CREATE OR REPLACE TRIGGER card_passed_on BEFORE UPDATE OF owner_id, code_hash ON cards
    FOR EACH ROW WHEN (OLD.owner_id IS DISTINCT FROM NEW.owner_id OR OLD.code_hash IS DISTINCT FROM NEW.code_hash)
    EXECUTE FUNCTION card_next_payload_generation();

