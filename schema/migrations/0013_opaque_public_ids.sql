-- Activity and staff-log ids are shown opaque from now on (giftcards/public_ids.py): the primary keys stay
-- the bigints the ledger chain and the balance check order by, and the ids clients see are those numbers
-- encrypted. Until now they were shown spelled out (act_41, slog_7), and those ids stay valid: every row
-- made from here on is numbered from 2^50 (public_ids.LEGACY_LIMIT), so a spelled-out number below it
-- names a row whose number was shown anyway, and none at or above it is accepted. Order is kept: every new
-- number is larger than every old one.

DO $$
BEGIN
    IF (SELECT max(id) FROM ledger_entries) >= 1125899906842624
       OR (SELECT max(id) FROM staff_log) >= 1125899906842624 THEN
        RAISE EXCEPTION 'ledger_entries or staff_log already numbered past 2^50: adjust public_ids.LEGACY_LIMIT';
    END IF;
END $$;

ALTER TABLE ledger_entries ALTER COLUMN id RESTART WITH 1125899906842624;
ALTER TABLE staff_log ALTER COLUMN id RESTART WITH 1125899906842624;
