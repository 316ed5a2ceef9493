-- was sha256 343fd487fdbb4d728da32bf0b662de488bcdc6628850ecf13aef5a309fec06dd
-- (as applied until its functions and triggers moved to schema/functions/redemption.sql)
-- A redemption in one round trip: the caller's credential, the terminal's rate limit and role, the
-- idempotency key, the posting and the staff-log record, all in one statement (so one transaction).
--
-- It takes only the plain case. Whenever something needs more than that (an unknown or revoked
-- credential, a terminal that is rate-limited or above its store's limit, a card that is not found, a
-- signing key that is no longer live) it writes nothing and answers route = 'fallback', and the caller
-- runs the general path (giftcards/web/calls.py), which owns those answers and their records. What it
-- stores for an idempotency key is the posting itself; the application renders it into the answer, the
-- same way the first time and on every replay.

ALTER TABLE idempotency_keys ADD COLUMN posting jsonb;
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_outcome_once
    CHECK (posting IS NULL OR (status IS NULL AND body IS NULL));
