-- Failed-attempt counters: one SQL body each, used by the redemption statement and by the Python callers
-- (giftcards/stores/ratelimit.py says why these subjects and limits).

-- Seconds until every subject is below its limit again (at least 1, at most the window), or NULL when
-- none has reached it. A NULL subject (a terminal without a client address) counts nothing. In plpgsql, so
-- that each lookup is one planned index probe: as one SQL statement over unnest it cost a till's
-- redemption a quarter of its time.
CREATE OR REPLACE FUNCTION failure_wait(p_subjects text[], p_limits integer[], p_window_seconds integer)
RETURNS integer LANGUAGE plpgsql STABLE AS $$
DECLARE
    since   timestamptz := now() - make_interval(secs => p_window_seconds);
    oldest  timestamptz;  -- of the failures that keep a subject at its limit
    latest  timestamptz;  -- the latest of those, over the subjects
BEGIN
    FOR i IN 1 .. cardinality(p_subjects) LOOP
        CONTINUE WHEN p_subjects[i] IS NULL;
        SELECT f.created_at INTO oldest FROM failed_attempts f
         WHERE f.subject = p_subjects[i] AND f.created_at > since
         ORDER BY f.created_at DESC OFFSET p_limits[i] - 1 LIMIT 1;
        IF FOUND AND (latest IS NULL OR oldest > latest) THEN latest := oldest; END IF;
    END LOOP;
    IF latest IS NULL THEN RETURN NULL; END IF;
    RETURN greatest(1, least(p_window_seconds, ceil(extract(epoch FROM latest - since))))::integer;
END $$;

-- One failure for each subject; true when it brought a subject that `flags` to its limit.
CREATE OR REPLACE FUNCTION record_failure(p_subjects text[], p_limits integer[], p_flags boolean[],
                               p_window_seconds integer)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM failed_attempts
     WHERE subject = ANY (p_subjects) AND created_at <= now() - make_interval(secs => p_window_seconds);
    INSERT INTO failed_attempts (subject) SELECT s FROM unnest(p_subjects) AS s WHERE s IS NOT NULL;
    RETURN EXISTS (
        SELECT 1 FROM unnest(p_subjects, p_limits, p_flags) AS s (subject, most, flags)
         WHERE s.flags AND (SELECT count(*) FROM failed_attempts f
                             WHERE f.subject = s.subject
                               AND f.created_at > now() - make_interval(secs => p_window_seconds)) >= s.most);
END $$;

-- The counters a terminal's failed lookups count against: the terminal, its merchant at its address, the
-- address over all merchants. p_limits holds their limits in this order, then the window in seconds.
CREATE OR REPLACE FUNCTION terminal_failure_subjects(p_merchant_id text, p_terminal_id text, p_client text)
RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['terminal:' || p_terminal_id, 'address:' || p_merchant_id || ':' || p_client,
                 'platform-address:' || p_client]
$$;

CREATE OR REPLACE FUNCTION terminal_failure_wait(p_merchant_id text, p_terminal_id text, p_client text,
                                      p_limits integer[])
RETURNS integer LANGUAGE sql STABLE AS $$
    SELECT failure_wait(terminal_failure_subjects(p_merchant_id, p_terminal_id, p_client), p_limits[1:3],
                        p_limits[4])
$$;

-- Counts a terminal's failed lookup and flags the terminal when it reached its own or its address's limit.
CREATE OR REPLACE FUNCTION record_terminal_failure(p_merchant_id text, p_terminal_id text, p_client text,
                                        p_limits integer[])
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF record_failure(terminal_failure_subjects(p_merchant_id, p_terminal_id, p_client), p_limits[1:3],
                      ARRAY[true, true, false], p_limits[4]) THEN
        UPDATE terminals SET flagged_at = now() WHERE merchant_id = p_merchant_id AND id = p_terminal_id;
        RETURN true;
    END IF;
    RETURN false;
END $$;
