--
-- PostgreSQL database dump
--



SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET transaction_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: card_maximum(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.card_maximum() RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN 100000000;


--
-- Name: card_balance; Type: DOMAIN; Schema: public; Owner: -
--

CREATE DOMAIN public.card_balance AS bigint
	CONSTRAINT card_balance_not_negative CHECK ((VALUE >= 0))
	CONSTRAINT card_balance_within_maximum CHECK ((VALUE <= public.card_maximum()));


--
-- Name: amount; Type: DOMAIN; Schema: public; Owner: -
--

CREATE DOMAIN public.amount AS public.card_balance
	CONSTRAINT amount_positive CHECK (((VALUE)::bigint > 0));


--
-- Name: ledger_posting; Type: TYPE; Schema: public; Owner: -
--

CREATE TYPE public.ledger_posting AS (
	outcome text,
	entry_id bigint,
	entry_amount bigint,
	requested bigint,
	card_id text,
	card_state text,
	card_balance bigint,
	card_currency text,
	card_expires_at timestamp with time zone,
	refundable bigint,
	created_at timestamp with time zone
);


--
-- Name: redemption_answer; Type: TYPE; Schema: public; Owner: -
--

CREATE TYPE public.redemption_answer AS (
	item integer,
	outcome text,
	principal_id text,
	replayed boolean,
	retry_after integer,
	store_limit bigint,
	entry_id bigint,
	entry_amount bigint,
	requested bigint,
	card_id text,
	card_state text,
	card_balance bigint,
	card_currency text,
	card_expires_at timestamp with time zone,
	refundable bigint,
	created_at timestamp with time zone
);


--
-- Name: card_check_balance_matches_ledger(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.card_check_balance_matches_ledger() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    current_balance bigint;
    last_balance bigint;
BEGIN
    -- Deferred to commit: read the row as it is now, not as it was when the event was queued.
    SELECT c.balance, (SELECT e.balance_after FROM ledger_entries e
                        WHERE e.merchant_id = c.merchant_id AND e.card_id = c.id
                        ORDER BY e.id DESC LIMIT 1)
      INTO current_balance, last_balance
      FROM cards c WHERE c.merchant_id = NEW.merchant_id AND c.id = NEW.id;
    IF last_balance IS DISTINCT FROM current_balance THEN
        RAISE EXCEPTION 'balance of card % (%) does not match its ledger (%)', NEW.id, current_balance, last_balance
            USING ERRCODE = 'check_violation', CONSTRAINT = 'card_balance_matches_ledger';
    END IF;
    RETURN NULL;
END $$;


--
-- Name: card_next_payload_generation(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.card_next_payload_generation() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.payload_generation := next_payload_generation(OLD.payload_generation);
    RETURN NEW;
END $$;


--
-- Name: claim_idempotency_key(text, text, text, bytea); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.claim_idempotency_key(p_merchant_id text, p_principal_id text, p_key text, p_request_hash bytea) RETURNS boolean
    LANGUAGE sql
    AS $$
    WITH claimed AS (
        INSERT INTO idempotency_keys (merchant_id, principal_id, key, request_hash)
        VALUES (p_merchant_id, p_principal_id, p_key, p_request_hash)
        ON CONFLICT DO NOTHING RETURNING true)
    SELECT EXISTS (SELECT 1 FROM claimed)
$$;


--
-- Name: failure_wait(text[], integer[], integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.failure_wait(p_subjects text[], p_limits integer[], p_window_seconds integer) RETURNS integer
    LANGUAGE plpgsql STABLE
    AS $$
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


--
-- Name: ledger_check_chain(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.ledger_check_chain() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    previous bigint;
BEGIN
    IF NEW.kind = 'issue' THEN
        -- The first entry; ledger_one_issue_per_card keeps it the only one.
        IF NEW.balance_after <> NEW.amount THEN
            RAISE EXCEPTION 'issue entry must leave balance_after = amount'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_chain';
        END IF;
        RETURN NEW;
    END IF;
    SELECT balance_after INTO previous FROM ledger_entries
     WHERE merchant_id = NEW.merchant_id AND card_id = NEW.card_id
     ORDER BY id DESC LIMIT 1;
    IF NOT FOUND OR previous + NEW.amount <> NEW.balance_after THEN
        RAISE EXCEPTION 'entry breaks the balance chain of card % (previous %, amount %, balance_after %)',
            NEW.card_id, previous, NEW.amount, NEW.balance_after
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_chain';
    END IF;
    RETURN NEW;
END $$;


--
-- Name: next_payload_generation(integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.next_payload_generation(generation integer) RETURNS integer
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT (generation + 1) % 65536 $$;


--
-- Name: post_activity(text, text, bytea, text, bigint, text, boolean, bigint, text, text, text, text, text, text, integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.post_activity(p_merchant_id text, p_card_id text, p_code_hash bytea, p_kind text, p_amount bigint, p_currency text, p_allow_partial boolean, p_refund_of bigint, p_reason text, p_actor_type text, p_actor_id text, p_store_id text, p_reference text, p_idempotency_key text, p_payload_generation integer DEFAULT NULL::integer) RETURNS public.ledger_posting
    LANGUAGE plpgsql
    AS $$
DECLARE
    c          cards%ROWTYPE;
    r          ledger_posting;
    delta      bigint := 0;
    new_state  text;
    redeemed   bigint;
    refunded   bigint;
    expired    boolean;
BEGIN
    IF p_card_id IS NOT NULL THEN
        SELECT * INTO c FROM cards WHERE merchant_id = p_merchant_id AND id = p_card_id FOR UPDATE;
    ELSE
        SELECT * INTO c FROM cards WHERE merchant_id = p_merchant_id AND code_hash = p_code_hash FOR UPDATE;
    END IF;
    r.requested := p_amount;
    IF NOT FOUND THEN
        r.outcome := CASE WHEN p_card_id IS NULL THEN 'invalid_code' ELSE 'card_not_found' END;
        RETURN r;
    END IF;
    IF p_payload_generation IS NOT NULL AND p_payload_generation <> c.payload_generation THEN
        r.outcome := 'invalid_qr_payload';  -- before any figure of the card is filled in
        RETURN r;
    END IF;
    r.card_id := c.id; r.card_state := c.state; r.card_balance := c.balance;
    r.card_currency := c.currency; r.card_expires_at := c.expires_at;
    new_state := c.state;
    expired := c.state = 'expired' OR (c.expires_at IS NOT NULL AND c.expires_at <= now());

    IF p_currency IS NOT NULL AND p_currency <> c.currency
       AND p_kind IN ('load', 'redeem', 'refund', 'adjust') THEN
        r.outcome := 'currency_mismatch'; RETURN r;
    END IF;

    CASE p_kind
    WHEN 'redeem', 'load', 'adjust' THEN
        IF c.state = 'deactivated' THEN r.outcome := 'card_deactivated'; RETURN r; END IF;
        IF expired THEN r.outcome := 'card_expired'; RETURN r; END IF;
        IF c.state = 'blocked' THEN r.outcome := 'card_blocked'; RETURN r; END IF;
        IF c.state = 'pending' AND p_kind = 'redeem' THEN r.outcome := 'card_not_active'; RETURN r; END IF;
        IF p_kind = 'redeem' THEN
            delta := -p_amount;
            IF p_amount > c.balance THEN
                IF NOT p_allow_partial OR c.balance = 0 THEN r.outcome := 'insufficient_funds'; RETURN r; END IF;
                delta := -c.balance;
            END IF;
        ELSIF p_kind = 'load' THEN
            delta := p_amount;
        ELSE
            delta := p_amount;
            IF c.balance + delta < 0 THEN r.outcome := 'insufficient_funds'; RETURN r; END IF;
        END IF;
        IF c.balance + delta > card_maximum() THEN r.outcome := 'balance_limit_exceeded'; RETURN r; END IF;
    WHEN 'refund' THEN
        SELECT -amount INTO redeemed FROM ledger_entries
         WHERE merchant_id = p_merchant_id AND id = p_refund_of AND card_id = c.id AND kind = 'redeem';
        IF NOT FOUND THEN
            r.outcome := CASE WHEN EXISTS (SELECT 1 FROM ledger_entries
                                            WHERE merchant_id = p_merchant_id AND id = p_refund_of AND card_id = c.id)
                              THEN 'not_a_redemption' ELSE 'activity_not_found' END;
            RETURN r;
        END IF;
        SELECT coalesce(sum(amount), 0) INTO refunded FROM ledger_entries
         WHERE merchant_id = p_merchant_id AND refund_of = p_refund_of;
        r.refundable := redeemed - refunded;
        IF c.state = 'deactivated' THEN r.outcome := 'card_deactivated'; RETURN r; END IF;
        IF expired THEN r.outcome := 'card_expired'; RETURN r; END IF;
        IF p_amount > redeemed - refunded THEN r.outcome := 'refund_exceeds_redemption'; RETURN r; END IF;
        IF c.balance + p_amount > card_maximum() THEN r.outcome := 'balance_limit_exceeded'; RETURN r; END IF;
        delta := p_amount;
        r.refundable := redeemed - refunded - p_amount;
    WHEN 'activate' THEN
        IF c.state <> 'pending' THEN r.outcome := 'invalid_state_transition'; RETURN r; END IF;
        IF expired THEN r.outcome := 'card_expired'; RETURN r; END IF;
        new_state := 'active';
    WHEN 'block' THEN
        IF c.state <> 'active' THEN r.outcome := 'invalid_state_transition'; RETURN r; END IF;
        new_state := 'blocked';
    WHEN 'unblock' THEN
        IF c.state <> 'blocked' THEN r.outcome := 'invalid_state_transition'; RETURN r; END IF;
        new_state := 'active';
    WHEN 'deactivate' THEN
        IF c.state IN ('deactivated', 'expired') THEN r.outcome := 'invalid_state_transition'; RETURN r; END IF;
        new_state := 'deactivated';
        delta := -c.balance;
    WHEN 'expire' THEN
        IF c.state NOT IN ('pending', 'active', 'blocked') OR NOT expired THEN
            r.outcome := 'invalid_state_transition'; RETURN r;
        END IF;
        new_state := 'expired';
        delta := -c.balance;
    ELSE
        RAISE EXCEPTION 'post_activity cannot post %', p_kind USING ERRCODE = 'invalid_parameter_value';
    END CASE;

    UPDATE cards SET balance = balance + delta, state = new_state, updated_at = now()
     WHERE merchant_id = p_merchant_id AND id = c.id;
    INSERT INTO ledger_entries (merchant_id, card_id, kind, amount, balance_after, currency, reason, refund_of,
                                actor_type, actor_id, store_id, reference, idempotency_key)
    VALUES (p_merchant_id, c.id, p_kind, delta, c.balance + delta, c.currency, p_reason,
            CASE WHEN p_kind = 'refund' THEN p_refund_of END,
            p_actor_type, p_actor_id, p_store_id, p_reference, p_idempotency_key)
    RETURNING id, created_at INTO r.entry_id, r.created_at;
    r.outcome := 'ok'; r.entry_amount := delta;
    r.card_state := new_state; r.card_balance := c.balance + delta;
    RETURN r;
END $$;


--
-- Name: record_failure(text[], integer[], boolean[], integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.record_failure(p_subjects text[], p_limits integer[], p_flags boolean[], p_window_seconds integer) RETURNS boolean
    LANGUAGE plpgsql
    AS $$
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


--
-- Name: record_staff_action(text, text, text, text, text, text, text, bigint, text, bigint, boolean, text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.record_staff_action(p_merchant_id text, p_terminal_id text, p_store_id text, p_action text, p_outcome text, p_card_id text, p_code_last4 text, p_amount bigint, p_currency text, p_activity_id bigint, p_flagged boolean, p_client text) RETURNS void
    LANGUAGE sql
    AS $$
    INSERT INTO staff_log (merchant_id, terminal_id, store_id, action, outcome, card_id, code_last4, amount,
                           currency, activity_id, flagged, client_address)
    VALUES (p_merchant_id, p_terminal_id, p_store_id, p_action, p_outcome, p_card_id, p_code_last4, p_amount,
            p_currency, p_activity_id, p_flagged, left(p_client, 100))
$$;


--
-- Name: record_terminal_failure(text, text, text, integer[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.record_terminal_failure(p_merchant_id text, p_terminal_id text, p_client text, p_limits integer[]) RETURNS boolean
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF record_failure(terminal_failure_subjects(p_merchant_id, p_terminal_id, p_client), p_limits[1:3],
                      ARRAY[true, true, false], p_limits[4]) THEN
        UPDATE terminals SET flagged_at = now() WHERE merchant_id = p_merchant_id AND id = p_terminal_id;
        RETURN true;
    END IF;
    RETURN false;
END $$;


--
-- Name: redeem_request(text, text, bytea, text, text, bytea, text, text, text, integer, bytea, text, bigint, text, boolean, text, integer[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.redeem_request(p_token_kind text, p_merchant_id text, p_token_hash bytea, p_client text, p_idempotency_key text, p_request_hash bytea, p_refused text, p_kid text, p_card_id text, p_payload_generation integer, p_code_hash bytea, p_code_last4 text, p_amount bigint, p_currency text, p_allow_partial boolean, p_reference text, p_limits integer[]) RETURNS public.redemption_answer
    LANGUAGE plpgsql
    AS $$
DECLARE
    a        redemption_answer;
    r        ledger_posting;
    store    text;
    role     text;
    revoked  timestamptz;
    most     bigint;
    new_key  boolean := false;
    flagged  boolean := false;
    stored   idempotency_keys%ROWTYPE;
BEGIN
    a.replayed := false;
    IF p_token_kind = 'api_key' THEN
        SELECT k.id INTO a.principal_id FROM api_keys k
         WHERE k.merchant_id = p_merchant_id AND k.token_hash = p_token_hash AND k.revoked_at IS NULL;
    ELSE
        SELECT t.id, t.store_id, t.role, t.revoked_at, s.redeem_limit INTO a.principal_id, store, role, revoked, most
          FROM terminals t JOIN stores s ON s.merchant_id = t.merchant_id AND s.id = t.store_id
         WHERE t.merchant_id = p_merchant_id AND t.token_hash = p_token_hash;
        IF revoked IS NOT NULL THEN  -- logged, as terminals.authenticate logs it
            PERFORM record_staff_action(p_merchant_id, a.principal_id, store, 'authenticate', 'unauthenticated',
                                        NULL, NULL, NULL, NULL, NULL, false, NULL);
            a.principal_id := NULL;
        END IF;
    END IF;
    IF a.principal_id IS NULL THEN a.outcome := 'unauthenticated'; RETURN a; END IF;
    IF p_refused = 'invalid_request' THEN a.outcome := p_refused; RETURN a; END IF;

    -- A retry finds its answer before any limit applies, as in idempotency.run_once. A new key is written
    -- once, with its answer, at the end: a twin sent meanwhile in another batch then fails on the primary
    -- key, its batch is undone, and sent again alone it finds this answer.
    IF p_idempotency_key IS NOT NULL THEN
        SELECT * INTO stored FROM idempotency_keys k
         WHERE k.merchant_id = p_merchant_id AND k.principal_id = a.principal_id AND k.key = p_idempotency_key;
        IF FOUND THEN
            IF stored.request_hash <> p_request_hash THEN a.outcome := 'idempotency_conflict'; RETURN a; END IF;
            a.replayed := true;
            r := jsonb_populate_record(NULL::ledger_posting, stored.posting);
        ELSE
            new_key := true;
        END IF;
    END IF;

    IF NOT a.replayed THEN
        IF p_token_kind = 'terminal' THEN
            a.retry_after := terminal_failure_wait(p_merchant_id, a.principal_id, p_client, p_limits);
            IF a.retry_after IS NOT NULL THEN
                a.outcome := 'rate_limited';
            ELSIF role = 'clerk' AND most IS NOT NULL AND p_amount > most THEN
                a.outcome := 'store_limit_exceeded'; a.store_limit := most;
            END IF;
            IF a.outcome IS NOT NULL THEN  -- answers that trying again may change are not kept
                PERFORM record_staff_action(p_merchant_id, a.principal_id, store, 'redeem', a.outcome, NULL,
                                            p_code_last4, p_amount, NULL, NULL, false, p_client);
                RETURN a;
            END IF;
        END IF;

        IF p_refused IS NULL AND p_kid IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM signing_keys WHERE kid = p_kid AND state <> 'retired') THEN
            p_refused := 'invalid_qr_payload';  -- signed by a key retired since this process loaded it
        END IF;
        IF p_refused IS NOT NULL THEN  -- invalid_qr_payload or invalid_code: no card is named
            r.outcome := p_refused; r.requested := p_amount;
        ELSE
            r := post_activity(p_merchant_id, p_card_id, p_code_hash, 'redeem', p_amount, p_currency,
                               p_allow_partial, NULL, NULL, p_token_kind, a.principal_id, store, p_reference,
                               p_idempotency_key, p_payload_generation);
            IF r.outcome = 'card_not_found' THEN
                r.outcome := 'invalid_qr_payload';  -- a genuine payload of a deleted card, told as a forged one
            END IF;
        END IF;

        IF p_token_kind = 'terminal' THEN
            IF r.outcome IN ('invalid_code', 'invalid_qr_payload') THEN
                flagged := record_terminal_failure(p_merchant_id, a.principal_id, p_client, p_limits);
            END IF;
            PERFORM record_staff_action(
                p_merchant_id, a.principal_id, store, 'redeem', r.outcome, r.card_id, p_code_last4,
                CASE WHEN r.outcome = 'ok' THEN -r.entry_amount ELSE p_amount END, r.card_currency, r.entry_id,
                flagged, p_client);
        END IF;
    END IF;

    IF new_key THEN  -- the key's answer is the posting, rendered by the same code the first time and later
        INSERT INTO idempotency_keys (merchant_id, principal_id, key, request_hash, posting)
        VALUES (p_merchant_id, a.principal_id, p_idempotency_key, p_request_hash, to_jsonb(r));
    END IF;
    a.outcome := r.outcome; a.entry_id := r.entry_id; a.entry_amount := r.entry_amount;
    a.requested := r.requested; a.card_id := r.card_id; a.card_state := r.card_state;
    a.card_balance := r.card_balance; a.card_currency := r.card_currency;
    a.card_expires_at := r.card_expires_at; a.refundable := r.refundable; a.created_at := r.created_at;
    RETURN a;
END $$;


--
-- Name: redeem_requests(text[], text[], bytea[], text[], text[], bytea[], text[], text[], text[], integer[], bytea[], text[], bigint[], text[], boolean[], text[], integer[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.redeem_requests(p_token_kinds text[], p_merchant_ids text[], p_token_hashes bytea[], p_clients text[], p_idempotency_keys text[], p_request_hashes bytea[], p_refused text[], p_kids text[], p_card_ids text[], p_payload_generations integer[], p_code_hashes bytea[], p_code_last4s text[], p_amounts bigint[], p_currencies text[], p_allow_partials boolean[], p_references text[], p_limits integer[]) RETURNS SETOF public.redemption_answer
    LANGUAGE plpgsql
    AS $$
DECLARE
    a redemption_answer;
BEGIN
    FOR i IN 1 .. cardinality(p_token_kinds) LOOP
        a := redeem_request(p_token_kinds[i], p_merchant_ids[i], p_token_hashes[i], p_clients[i],
                            p_idempotency_keys[i], p_request_hashes[i], p_refused[i], p_kids[i],
                            p_card_ids[i], p_payload_generations[i], p_code_hashes[i], p_code_last4s[i],
                            p_amounts[i], p_currencies[i], p_allow_partials[i], p_references[i], p_limits);
        a.item := i;
        RETURN NEXT a;
    END LOOP;
END $$;


--
-- Name: refuse_change(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.refuse_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION '% (% refused)', TG_ARGV[0], TG_OP
        USING ERRCODE = 'restrict_violation', CONSTRAINT = TG_ARGV[1];
END $$;


--
-- Name: terminal_failure_subjects(text, text, text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.terminal_failure_subjects(p_merchant_id text, p_terminal_id text, p_client text) RETURNS text[]
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT ARRAY['terminal:' || p_terminal_id, 'address:' || p_merchant_id || ':' || p_client,
                 'platform-address:' || p_client]
$$;


--
-- Name: terminal_failure_wait(text, text, text, integer[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.terminal_failure_wait(p_merchant_id text, p_terminal_id text, p_client text, p_limits integer[]) RETURNS integer
    LANGUAGE sql STABLE
    AS $$
    SELECT failure_wait(terminal_failure_subjects(p_merchant_id, p_terminal_id, p_client), p_limits[1:3],
                        p_limits[4])
$$;


--
-- Name: wechat_outbox_enqueue(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.wechat_outbox_enqueue() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: api_keys; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.api_keys (
    merchant_id text NOT NULL,
    id text NOT NULL,
    token_hash bytea NOT NULL,
    token_last4 text NOT NULL,
    label text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    revoked_at timestamp with time zone,
    CONSTRAINT api_key_hash_length CHECK ((length(token_hash) = 32)),
    CONSTRAINT api_key_label_length CHECK ((char_length(label) <= 200))
);


--
-- Name: card_access; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.card_access (
    merchant_id text NOT NULL,
    id text NOT NULL,
    card_id text NOT NULL,
    owner_id text NOT NULL,
    token_hash bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    revoked_at timestamp with time zone,
    api_key_id text,
    CONSTRAINT card_access_hash_length CHECK ((length(token_hash) = 32)),
    CONSTRAINT card_access_id_shape CHECK ((id ~ '^cax_[a-z2-7]{16}$'::text)),
    CONSTRAINT card_access_owner_length CHECK (((char_length(owner_id) >= 1) AND (char_length(owner_id) <= 128)))
);


--
-- Name: card_batches; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.card_batches (
    merchant_id text NOT NULL,
    id text NOT NULL,
    count integer NOT NULL,
    amount bigint NOT NULL,
    currency text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT card_batch_count_range CHECK (((count >= 1) AND (count <= 100000)))
);


--
-- Name: cards; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.cards (
    merchant_id text NOT NULL,
    id text NOT NULL,
    code_hash bytea NOT NULL,
    code_sealed bytea NOT NULL,
    code_last4 text NOT NULL,
    currency text NOT NULL,
    initial_amount public.amount NOT NULL,
    balance public.card_balance NOT NULL,
    state text NOT NULL,
    expires_at timestamp with time zone,
    campaign text,
    design_id text,
    batch_id text,
    owner_id text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    payload_generation integer DEFAULT 0 NOT NULL,
    CONSTRAINT card_campaign_length CHECK (((char_length(campaign) >= 1) AND (char_length(campaign) <= 100))),
    CONSTRAINT card_code_hash_length CHECK ((length(code_hash) = 32)),
    CONSTRAINT card_currency_iso4217 CHECK ((currency ~ '^[A-Z]{3}$'::text)),
    CONSTRAINT card_id_shape CHECK ((id ~ '^card_[a-z2-7]{16}$'::text)),
    CONSTRAINT card_owner_length CHECK (((char_length(owner_id) >= 1) AND (char_length(owner_id) <= 128))),
    CONSTRAINT card_payload_generation_range CHECK (((payload_generation >= 0) AND (payload_generation <= 65535))),
    CONSTRAINT card_state_known CHECK ((state = ANY (ARRAY['pending'::text, 'active'::text, 'blocked'::text, 'deactivated'::text, 'expired'::text])))
)
WITH (fillfactor='80');


--
-- Name: customise_sessions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.customise_sessions (
    merchant_id text NOT NULL,
    id text NOT NULL,
    token_hash bytea NOT NULL,
    api_key_id text NOT NULL,
    owner_id text NOT NULL,
    sender_name text,
    currency text NOT NULL,
    max_amount public.amount NOT NULL,
    reference text,
    expires_at timestamp with time zone NOT NULL,
    used_at timestamp with time zone,
    gift_id text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    revoked_at timestamp with time zone,
    CONSTRAINT customise_session_currency_iso4217 CHECK ((currency ~ '^[A-Z]{3}$'::text)),
    CONSTRAINT customise_session_hash_length CHECK ((length(token_hash) = 32)),
    CONSTRAINT customise_session_id_shape CHECK ((id ~ '^cus_[a-z2-7]{16}$'::text)),
    CONSTRAINT customise_session_owner_length CHECK (((char_length(owner_id) >= 1) AND (char_length(owner_id) <= 128))),
    CONSTRAINT customise_session_reference_length CHECK (((char_length(reference) >= 1) AND (char_length(reference) <= 200))),
    CONSTRAINT customise_session_sender_length CHECK (((char_length(sender_name) >= 1) AND (char_length(sender_name) <= 40))),
    CONSTRAINT customise_session_used_has_gift CHECK (((used_at IS NULL) = (gift_id IS NULL)))
);


--
-- Name: designs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.designs (
    merchant_id text NOT NULL,
    id text NOT NULL,
    name text NOT NULL,
    occasion text NOT NULL,
    background_color text NOT NULL,
    accent_color text NOT NULL,
    text_color text NOT NULL,
    cover_image_id text,
    currency text NOT NULL,
    denominations public.amount[] DEFAULT '{}'::public.amount[] NOT NULL,
    min_amount public.amount,
    max_amount public.amount,
    stock integer,
    sold integer DEFAULT 0 NOT NULL,
    sale_starts_at timestamp with time zone,
    sale_ends_at timestamp with time zone,
    card_validity_days integer,
    active boolean DEFAULT true NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT design_accent_color_shape CHECK ((accent_color ~ '^#[0-9a-f]{6}$'::text)),
    CONSTRAINT design_background_color_shape CHECK ((background_color ~ '^#[0-9a-f]{6}$'::text)),
    CONSTRAINT design_card_validity_range CHECK (((card_validity_days >= 1) AND (card_validity_days <= 3660))),
    CONSTRAINT design_currency_iso4217 CHECK ((currency ~ '^[A-Z]{3}$'::text)),
    CONSTRAINT design_denominations_count CHECK ((cardinality(denominations) <= 12)),
    CONSTRAINT design_free_range_complete CHECK (((min_amount IS NULL) = (max_amount IS NULL))),
    CONSTRAINT design_free_range_ordered CHECK (((min_amount)::bigint <= (max_amount)::bigint)),
    CONSTRAINT design_has_amounts CHECK (((cardinality(denominations) > 0) OR (min_amount IS NOT NULL))),
    CONSTRAINT design_id_shape CHECK ((id ~ '^dsn_[a-z2-7]{16}$'::text)),
    CONSTRAINT design_name_length CHECK (((char_length(name) >= 1) AND (char_length(name) <= 100))),
    CONSTRAINT design_occasion_known CHECK ((occasion = ANY (ARRAY['qixi'::text, '520'::text, 'valentines'::text, 'spring_festival'::text, 'birthday'::text, 'thank_you'::text, 'other'::text]))),
    CONSTRAINT design_sale_window_ordered CHECK ((sale_starts_at < sale_ends_at)),
    CONSTRAINT design_sold_not_negative CHECK ((sold >= 0)),
    CONSTRAINT design_sold_within_stock CHECK (((stock IS NULL) OR (sold <= stock))),
    CONSTRAINT design_stock_not_negative CHECK ((stock >= 0)),
    CONSTRAINT design_text_color_shape CHECK ((text_color ~ '^#[0-9a-f]{6}$'::text))
);


--
-- Name: failed_attempts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.failed_attempts (
    id bigint NOT NULL,
    subject text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT failed_attempt_subject_length CHECK (((char_length(subject) >= 1) AND (char_length(subject) <= 200)))
);


--
-- Name: failed_attempts_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.failed_attempts ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.failed_attempts_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: gifts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.gifts (
    merchant_id text NOT NULL,
    id text NOT NULL,
    card_id text NOT NULL,
    design_id text,
    photo_id text,
    gifter_id text NOT NULL,
    recipient_id text,
    sender_name text NOT NULL,
    recipient_name text NOT NULL,
    message text DEFAULT ''::text NOT NULL,
    amount public.amount NOT NULL,
    currency text NOT NULL,
    claim_hash bytea NOT NULL,
    claim_sealed bytea NOT NULL,
    state text DEFAULT 'waiting'::text NOT NULL,
    opens_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    claimed_at timestamp with time zone,
    revoked_at timestamp with time zone,
    returned_at timestamp with time zone,
    reference text,
    previous_gift_id text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    recipient_owner_id text,
    CONSTRAINT gift_claim_hash_length CHECK ((length(claim_hash) = 32)),
    CONSTRAINT gift_claimed_consistent CHECK ((((state = 'claimed'::text) = (claimed_at IS NOT NULL)) AND ((claimed_at IS NULL) = (recipient_id IS NULL)))),
    CONSTRAINT gift_currency_iso4217 CHECK ((currency ~ '^[A-Z]{3}$'::text)),
    CONSTRAINT gift_gifter_length CHECK (((char_length(gifter_id) >= 1) AND (char_length(gifter_id) <= 128))),
    CONSTRAINT gift_id_shape CHECK ((id ~ '^gift_[a-z2-7]{16}$'::text)),
    CONSTRAINT gift_message_length CHECK ((char_length(message) <= 200)),
    CONSTRAINT gift_opens_before_expiry CHECK ((opens_at < expires_at)),
    CONSTRAINT gift_recipient_length CHECK (((char_length(recipient_id) >= 1) AND (char_length(recipient_id) <= 128))),
    CONSTRAINT gift_recipient_name_length CHECK (((char_length(recipient_name) >= 1) AND (char_length(recipient_name) <= 40))),
    CONSTRAINT gift_recipient_owner_length CHECK (((char_length(recipient_owner_id) >= 1) AND (char_length(recipient_owner_id) <= 128))),
    CONSTRAINT gift_reference_length CHECK (((char_length(reference) >= 1) AND (char_length(reference) <= 200))),
    CONSTRAINT gift_returned_consistent CHECK (((state = 'returned'::text) = (returned_at IS NOT NULL))),
    CONSTRAINT gift_revoked_consistent CHECK (((state = 'revoked'::text) = (revoked_at IS NOT NULL))),
    CONSTRAINT gift_sender_name_length CHECK (((char_length(sender_name) >= 1) AND (char_length(sender_name) <= 40))),
    CONSTRAINT gift_state_known CHECK ((state = ANY (ARRAY['waiting'::text, 'claimed'::text, 'revoked'::text, 'returned'::text])))
);


--
-- Name: idempotency_keys; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.idempotency_keys (
    merchant_id text NOT NULL,
    principal_id text NOT NULL,
    key text NOT NULL,
    request_hash bytea NOT NULL,
    status integer,
    body bytea,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    posting jsonb,
    CONSTRAINT idempotency_outcome_once CHECK (((posting IS NULL) OR ((status IS NULL) AND (body IS NULL))))
);


--
-- Name: images; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.images (
    merchant_id text NOT NULL,
    id text NOT NULL,
    purpose text NOT NULL,
    media_type text NOT NULL,
    width integer NOT NULL,
    height integer NOT NULL,
    data bytea NOT NULL,
    sha256 bytea NOT NULL,
    session_id text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT image_data_size CHECK (((length(data) >= 1) AND (length(data) <= 5242880))),
    CONSTRAINT image_height_range CHECK (((height >= 1) AND (height <= 1600))),
    CONSTRAINT image_id_shape CHECK ((id ~ '^img_[a-z2-7]{16}$'::text)),
    CONSTRAINT image_media_type_known CHECK ((media_type = ANY (ARRAY['image/jpeg'::text, 'image/png'::text]))),
    CONSTRAINT image_purpose_known CHECK ((purpose = ANY (ARRAY['cover'::text, 'photo'::text]))),
    CONSTRAINT image_sha256_length CHECK ((length(sha256) = 32)),
    CONSTRAINT image_width_range CHECK (((width >= 1) AND (width <= 1600)))
);


--
-- Name: leases; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.leases (
    merchant_id text NOT NULL,
    name text NOT NULL,
    holder uuid NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    CONSTRAINT lease_name_length CHECK (((char_length(name) >= 1) AND (char_length(name) <= 200)))
);


--
-- Name: ledger_entries; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ledger_entries (
    merchant_id text NOT NULL,
    id bigint NOT NULL,
    card_id text NOT NULL,
    kind text NOT NULL,
    amount bigint NOT NULL,
    balance_after bigint NOT NULL,
    currency text NOT NULL,
    reason text,
    refund_of bigint,
    actor_type text NOT NULL,
    actor_id text,
    store_id text,
    reference text,
    idempotency_key text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT ledger_actor_type_known CHECK ((actor_type = ANY (ARRAY['api_key'::text, 'terminal'::text, 'system'::text, 'wechat'::text]))),
    CONSTRAINT ledger_adjust_has_reason CHECK (((kind <> 'adjust'::text) OR (reason IS NOT NULL))),
    CONSTRAINT ledger_amount_sign CHECK (
CASE
    WHEN (kind = ANY (ARRAY['issue'::text, 'load'::text, 'refund'::text])) THEN (amount > 0)
    WHEN (kind = 'redeem'::text) THEN (amount < 0)
    WHEN (kind = 'adjust'::text) THEN (amount <> 0)
    WHEN (kind = ANY (ARRAY['expire'::text, 'deactivate'::text])) THEN (amount <= 0)
    ELSE (amount = 0)
END),
    CONSTRAINT ledger_balance_after_not_negative CHECK ((balance_after >= 0)),
    CONSTRAINT ledger_kind_known CHECK ((kind = ANY (ARRAY['issue'::text, 'activate'::text, 'load'::text, 'redeem'::text, 'refund'::text, 'adjust'::text, 'expire'::text, 'block'::text, 'unblock'::text, 'deactivate'::text]))),
    CONSTRAINT ledger_reason_length CHECK (((char_length(reason) >= 1) AND (char_length(reason) <= 200))),
    CONSTRAINT ledger_reference_length CHECK ((char_length(reference) <= 200)),
    CONSTRAINT ledger_refund_names_redemption CHECK (((kind = 'refund'::text) = (refund_of IS NOT NULL)))
);


--
-- Name: ledger_entries_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.ledger_entries ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.ledger_entries_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: merchants; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.merchants (
    id text NOT NULL,
    name text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT merchant_id_shape CHECK ((id ~ '^mer_[a-z2-7]{16}$'::text)),
    CONSTRAINT merchant_name_length CHECK (((char_length(name) >= 1) AND (char_length(name) <= 200)))
);


--
-- Name: schema_functions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_functions (
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: signing_keys; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.signing_keys (
    kid text NOT NULL,
    public_key bytea NOT NULL,
    private_key_sealed bytea NOT NULL,
    state text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    retired_at timestamp with time zone,
    CONSTRAINT signing_key_kid_shape CHECK ((kid ~ '^[0-9a-f]{8}$'::text)),
    CONSTRAINT signing_key_public_length CHECK ((length(public_key) = 32)),
    CONSTRAINT signing_key_state_known CHECK ((state = ANY (ARRAY['active'::text, 'verify_only'::text, 'retired'::text])))
);


--
-- Name: staff_log; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.staff_log (
    merchant_id text NOT NULL,
    id bigint NOT NULL,
    terminal_id text NOT NULL,
    store_id text NOT NULL,
    action text NOT NULL,
    outcome text NOT NULL,
    card_id text,
    code_last4 text,
    amount bigint,
    currency text,
    activity_id bigint,
    flagged boolean DEFAULT false NOT NULL,
    client_address text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT staff_log_action_known CHECK ((action = ANY (ARRAY['authenticate'::text, 'enroll'::text, 'lookup'::text, 'redeem'::text, 'refund'::text, 'block'::text]))),
    CONSTRAINT staff_log_client_length CHECK ((char_length(client_address) <= 100)),
    CONSTRAINT staff_log_code_last4_short CHECK ((char_length(code_last4) <= 4)),
    CONSTRAINT staff_log_outcome_shape CHECK ((outcome ~ '^[a-z_]{2,40}$'::text))
);


--
-- Name: staff_log_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.staff_log ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.staff_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: stores; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.stores (
    merchant_id text NOT NULL,
    id text NOT NULL,
    name text NOT NULL,
    redeem_limit public.amount,
    timezone text DEFAULT 'Asia/Shanghai'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT store_id_shape CHECK ((id ~ '^store_[a-z2-7]{16}$'::text)),
    CONSTRAINT store_name_length CHECK (((char_length(name) >= 1) AND (char_length(name) <= 200))),
    CONSTRAINT store_timezone_length CHECK (((char_length(timezone) >= 1) AND (char_length(timezone) <= 64)))
);


--
-- Name: terminal_enrollments; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.terminal_enrollments (
    merchant_id text NOT NULL,
    terminal_id text NOT NULL,
    code_hash bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    used_at timestamp with time zone,
    api_key_id text,
    CONSTRAINT terminal_enrollment_expires_after_creation CHECK ((expires_at > created_at)),
    CONSTRAINT terminal_enrollment_hash_length CHECK ((length(code_hash) = 32)),
    CONSTRAINT terminal_enrollment_short_lived CHECK ((expires_at <= (created_at + '1 day'::interval)))
);


--
-- Name: terminals; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.terminals (
    merchant_id text NOT NULL,
    id text NOT NULL,
    store_id text NOT NULL,
    label text NOT NULL,
    role text NOT NULL,
    token_hash bytea,
    token_last4 text,
    enrolled_at timestamp with time zone,
    revoked_at timestamp with time zone,
    flagged_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT terminal_id_shape CHECK ((id ~ '^term_[a-z2-7]{16}$'::text)),
    CONSTRAINT terminal_label_length CHECK (((char_length(label) >= 1) AND (char_length(label) <= 100))),
    CONSTRAINT terminal_role_known CHECK ((role = ANY (ARRAY['clerk'::text, 'manager'::text]))),
    CONSTRAINT terminal_token_hash_length CHECK ((length(token_hash) = 32)),
    CONSTRAINT terminal_token_last4_with_hash CHECK (((token_hash IS NULL) = (token_last4 IS NULL)))
);


--
-- Name: wallet_sessions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.wallet_sessions (
    merchant_id text NOT NULL,
    id text NOT NULL,
    token_hash bytea NOT NULL,
    api_key_id text NOT NULL,
    owner_id text NOT NULL,
    display_name text,
    expires_at timestamp with time zone NOT NULL,
    revoked_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT wallet_session_display_name_length CHECK (((char_length(display_name) >= 1) AND (char_length(display_name) <= 40))),
    CONSTRAINT wallet_session_hash_length CHECK ((length(token_hash) = 32)),
    CONSTRAINT wallet_session_id_shape CHECK ((id ~ '^wls_[a-z2-7]{16}$'::text)),
    CONSTRAINT wallet_session_lifetime CHECK (((expires_at > created_at) AND (expires_at <= (created_at + '1 day'::interval)))),
    CONSTRAINT wallet_session_owner_length CHECK (((char_length(owner_id) >= 1) AND (char_length(owner_id) <= 128)))
);


--
-- Name: wechat_accounts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.wechat_accounts (
    merchant_id text NOT NULL,
    appid text NOT NULL,
    secret_sealed bytea NOT NULL,
    callback_token_sealed bytea NOT NULL,
    aes_key_sealed bytea,
    base_url text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT wechat_appid_shape CHECK ((appid ~ '^wx[0-9a-f]{16}$'::text)),
    CONSTRAINT wechat_base_url_shape CHECK ((base_url ~ '^https?://[^[:space:]]+/$'::text))
);


--
-- Name: wechat_callback_nonces; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.wechat_callback_nonces (
    merchant_id text NOT NULL,
    nonce text NOT NULL,
    "timestamp" bigint NOT NULL,
    body_hash bytea NOT NULL,
    seen_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: wechat_card_codes; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.wechat_card_codes (
    merchant_id text NOT NULL,
    card_id text NOT NULL,
    wechat_card_id text NOT NULL,
    code_hash bytea NOT NULL,
    code_sealed bytea NOT NULL,
    wallet_state text NOT NULL,
    openid text,
    gifting_to text,
    qr_url_sealed bytea,
    qr_expires_at timestamp with time zone,
    deposited_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT wechat_code_hash_length CHECK ((length(code_hash) = 32)),
    CONSTRAINT wechat_gifting_to_length CHECK (((char_length(gifting_to) >= 1) AND (char_length(gifting_to) <= 128))),
    CONSTRAINT wechat_openid_length CHECK (((char_length(openid) >= 1) AND (char_length(openid) <= 128))),
    CONSTRAINT wechat_wallet_state_known CHECK ((wallet_state = ANY (ARRAY['deposited'::text, 'in_wallet'::text, 'gifting'::text, 'deleted'::text, 'consumed'::text, 'unavailable'::text])))
);


--
-- Name: wechat_cards; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.wechat_cards (
    merchant_id text NOT NULL,
    design_key text NOT NULL,
    wechat_card_id text NOT NULL,
    title text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT wechat_card_design_key_length CHECK (((char_length(design_key) >= 1) AND (char_length(design_key) <= 64))),
    CONSTRAINT wechat_card_id_length CHECK (((char_length(wechat_card_id) >= 1) AND (char_length(wechat_card_id) <= 64)))
);


--
-- Name: wechat_credentials; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.wechat_credentials (
    merchant_id text NOT NULL,
    kind text NOT NULL,
    value_sealed bytea,
    expires_at timestamp with time zone DEFAULT '-infinity'::timestamp with time zone NOT NULL,
    fetched_at timestamp with time zone,
    CONSTRAINT wechat_credential_kind_known CHECK ((kind = ANY (ARRAY['access_token'::text, 'wx_card'::text])))
);


--
-- Name: wechat_discrepancies; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.wechat_discrepancies (
    merchant_id text NOT NULL,
    id bigint NOT NULL,
    card_id text NOT NULL,
    kind text NOT NULL,
    balance bigint NOT NULL,
    detail text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    resolved_at timestamp with time zone,
    CONSTRAINT wechat_discrepancy_detail_length CHECK ((char_length(detail) <= 300)),
    CONSTRAINT wechat_discrepancy_kind_known CHECK ((kind = ANY (ARRAY['consumed_in_wechat_with_balance'::text, 'wallet_update_refused_consumed'::text])))
);


--
-- Name: wechat_discrepancies_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.wechat_discrepancies ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.wechat_discrepancies_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: wechat_events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.wechat_events (
    merchant_id text NOT NULL,
    from_user text NOT NULL,
    create_time bigint NOT NULL,
    event text NOT NULL,
    code_hash bytea NOT NULL,
    card_id text,
    outcome text NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT wechat_event_code_hash_length CHECK ((length(code_hash) = 32)),
    CONSTRAINT wechat_event_from_length CHECK (((char_length(from_user) >= 1) AND (char_length(from_user) <= 128))),
    CONSTRAINT wechat_event_name_length CHECK (((char_length(event) >= 1) AND (char_length(event) <= 64)))
);


--
-- Name: wechat_outbox; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.wechat_outbox (
    merchant_id text NOT NULL,
    id bigint NOT NULL,
    card_id text NOT NULL,
    ledger_entry_id bigint,
    entry_kind text NOT NULL,
    amount bigint NOT NULL,
    balance bigint NOT NULL,
    currency text NOT NULL,
    finish text,
    state text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    last_error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    delivered_at timestamp with time zone,
    parked_at timestamp with time zone,
    replayed_at timestamp with time zone,
    claimed_by uuid,
    CONSTRAINT wechat_outbox_attempts_not_negative CHECK ((attempts >= 0)),
    CONSTRAINT wechat_outbox_balance_not_negative CHECK ((balance >= 0)),
    CONSTRAINT wechat_outbox_error_length CHECK ((char_length(last_error) <= 300)),
    CONSTRAINT wechat_outbox_finish_known CHECK ((finish = ANY (ARRAY['consume'::text, 'unavailable'::text]))),
    CONSTRAINT wechat_outbox_kind_known CHECK ((entry_kind = ANY (ARRAY['load'::text, 'redeem'::text, 'refund'::text, 'adjust'::text, 'expire'::text, 'deactivate'::text, 'sync'::text]))),
    CONSTRAINT wechat_outbox_state_known CHECK ((state = ANY (ARRAY['pending'::text, 'delivered'::text, 'parked'::text, 'skipped'::text]))),
    CONSTRAINT wechat_outbox_sync_has_no_entry CHECK (((entry_kind = 'sync'::text) = (ledger_entry_id IS NULL)))
);


--
-- Name: wechat_outbox_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.wechat_outbox ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.wechat_outbox_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: api_keys api_key_hash_unique; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_key_hash_unique UNIQUE (merchant_id, token_hash);


--
-- Name: api_keys api_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_pkey PRIMARY KEY (merchant_id, id);


--
-- Name: card_access card_access_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.card_access
    ADD CONSTRAINT card_access_pkey PRIMARY KEY (merchant_id, id);


--
-- Name: card_access card_access_token_unique; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.card_access
    ADD CONSTRAINT card_access_token_unique UNIQUE (token_hash);


--
-- Name: card_batches card_batches_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.card_batches
    ADD CONSTRAINT card_batches_pkey PRIMARY KEY (merchant_id, id);


--
-- Name: cards card_code_unique; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cards
    ADD CONSTRAINT card_code_unique UNIQUE (merchant_id, code_hash);


--
-- Name: cards cards_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cards
    ADD CONSTRAINT cards_pkey PRIMARY KEY (merchant_id, id);


--
-- Name: customise_sessions customise_session_token_unique; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.customise_sessions
    ADD CONSTRAINT customise_session_token_unique UNIQUE (token_hash);


--
-- Name: customise_sessions customise_sessions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.customise_sessions
    ADD CONSTRAINT customise_sessions_pkey PRIMARY KEY (merchant_id, id);


--
-- Name: designs designs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.designs
    ADD CONSTRAINT designs_pkey PRIMARY KEY (merchant_id, id);


--
-- Name: failed_attempts failed_attempts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.failed_attempts
    ADD CONSTRAINT failed_attempts_pkey PRIMARY KEY (id);


--
-- Name: gifts gift_claim_hash_unique; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.gifts
    ADD CONSTRAINT gift_claim_hash_unique UNIQUE (claim_hash);


--
-- Name: gifts gifts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.gifts
    ADD CONSTRAINT gifts_pkey PRIMARY KEY (merchant_id, id);


--
-- Name: idempotency_keys idempotency_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.idempotency_keys
    ADD CONSTRAINT idempotency_keys_pkey PRIMARY KEY (merchant_id, principal_id, key);


--
-- Name: images images_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.images
    ADD CONSTRAINT images_pkey PRIMARY KEY (merchant_id, id);


--
-- Name: leases leases_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.leases
    ADD CONSTRAINT leases_pkey PRIMARY KEY (merchant_id, name);


--
-- Name: ledger_entries ledger_entries_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ledger_entries
    ADD CONSTRAINT ledger_entries_pkey PRIMARY KEY (merchant_id, id);


--
-- Name: merchants merchants_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.merchants
    ADD CONSTRAINT merchants_pkey PRIMARY KEY (id);


--
-- Name: schema_functions schema_functions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_functions
    ADD CONSTRAINT schema_functions_pkey PRIMARY KEY (name);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);


--
-- Name: signing_keys signing_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.signing_keys
    ADD CONSTRAINT signing_keys_pkey PRIMARY KEY (kid);


--
-- Name: staff_log staff_log_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.staff_log
    ADD CONSTRAINT staff_log_pkey PRIMARY KEY (merchant_id, id);


--
-- Name: stores stores_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.stores
    ADD CONSTRAINT stores_pkey PRIMARY KEY (merchant_id, id);


--
-- Name: terminal_enrollments terminal_enrollments_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.terminal_enrollments
    ADD CONSTRAINT terminal_enrollments_pkey PRIMARY KEY (merchant_id, terminal_id, code_hash);


--
-- Name: terminals terminal_token_hash_unique; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.terminals
    ADD CONSTRAINT terminal_token_hash_unique UNIQUE (merchant_id, token_hash);


--
-- Name: terminals terminals_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.terminals
    ADD CONSTRAINT terminals_pkey PRIMARY KEY (merchant_id, id);


--
-- Name: wallet_sessions wallet_session_token_unique; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wallet_sessions
    ADD CONSTRAINT wallet_session_token_unique UNIQUE (token_hash);


--
-- Name: wallet_sessions wallet_sessions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wallet_sessions
    ADD CONSTRAINT wallet_sessions_pkey PRIMARY KEY (merchant_id, id);


--
-- Name: wechat_accounts wechat_accounts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wechat_accounts
    ADD CONSTRAINT wechat_accounts_pkey PRIMARY KEY (merchant_id);


--
-- Name: wechat_callback_nonces wechat_callback_nonces_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wechat_callback_nonces
    ADD CONSTRAINT wechat_callback_nonces_pkey PRIMARY KEY (merchant_id, nonce, "timestamp");


--
-- Name: wechat_card_codes wechat_card_codes_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wechat_card_codes
    ADD CONSTRAINT wechat_card_codes_pkey PRIMARY KEY (merchant_id, card_id);


--
-- Name: wechat_cards wechat_card_id_unique; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wechat_cards
    ADD CONSTRAINT wechat_card_id_unique UNIQUE (merchant_id, wechat_card_id);


--
-- Name: wechat_cards wechat_cards_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wechat_cards
    ADD CONSTRAINT wechat_cards_pkey PRIMARY KEY (merchant_id, design_key);


--
-- Name: wechat_card_codes wechat_code_unique; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wechat_card_codes
    ADD CONSTRAINT wechat_code_unique UNIQUE (merchant_id, wechat_card_id, code_hash);


--
-- Name: wechat_credentials wechat_credentials_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wechat_credentials
    ADD CONSTRAINT wechat_credentials_pkey PRIMARY KEY (merchant_id, kind);


--
-- Name: wechat_discrepancies wechat_discrepancies_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wechat_discrepancies
    ADD CONSTRAINT wechat_discrepancies_pkey PRIMARY KEY (merchant_id, id);


--
-- Name: wechat_events wechat_events_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wechat_events
    ADD CONSTRAINT wechat_events_pkey PRIMARY KEY (merchant_id, from_user, create_time, event, code_hash);


--
-- Name: wechat_outbox wechat_outbox_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wechat_outbox
    ADD CONSTRAINT wechat_outbox_pkey PRIMARY KEY (merchant_id, id);


--
-- Name: card_access_live_by_card; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX card_access_live_by_card ON public.card_access USING btree (merchant_id, card_id) WHERE (revoked_at IS NULL);


--
-- Name: cards_by_batch; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX cards_by_batch ON public.cards USING btree (merchant_id, batch_id, id) WHERE (batch_id IS NOT NULL);


--
-- Name: cards_by_creation; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX cards_by_creation ON public.cards USING btree (merchant_id, created_at DESC, id DESC);


--
-- Name: cards_by_owner; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX cards_by_owner ON public.cards USING btree (merchant_id, owner_id) WHERE (owner_id IS NOT NULL);


--
-- Name: cards_due_to_expire; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX cards_due_to_expire ON public.cards USING btree (expires_at) WHERE ((state = ANY (ARRAY['pending'::text, 'active'::text, 'blocked'::text])) AND (expires_at IS NOT NULL));


--
-- Name: cards_wallet_by_owner; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX cards_wallet_by_owner ON public.cards USING btree (merchant_id, owner_id, created_at, id) WHERE (owner_id IS NOT NULL);


--
-- Name: cards_wallet_with_value; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX cards_wallet_with_value ON public.cards USING btree (merchant_id, owner_id, COALESCE(expires_at, 'infinity'::timestamp with time zone), id) WHERE ((owner_id IS NOT NULL) AND (state = ANY (ARRAY['active'::text, 'pending'::text, 'blocked'::text])));


--
-- Name: designs_by_creation; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX designs_by_creation ON public.designs USING btree (merchant_id, created_at DESC, id DESC);


--
-- Name: failed_attempts_by_subject; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX failed_attempts_by_subject ON public.failed_attempts USING btree (subject, created_at);


--
-- Name: gifts_by_card; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX gifts_by_card ON public.gifts USING btree (merchant_id, card_id, created_at DESC);


--
-- Name: gifts_by_gifter; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX gifts_by_gifter ON public.gifts USING btree (merchant_id, gifter_id, created_at DESC, id DESC);


--
-- Name: gifts_by_recipient; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX gifts_by_recipient ON public.gifts USING btree (merchant_id, recipient_id, created_at DESC, id DESC) WHERE (recipient_id IS NOT NULL);


--
-- Name: gifts_due_to_return; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX gifts_due_to_return ON public.gifts USING btree (expires_at) WHERE (state = 'waiting'::text);


--
-- Name: gifts_one_waiting_per_card; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX gifts_one_waiting_per_card ON public.gifts USING btree (merchant_id, card_id) WHERE (state = 'waiting'::text);


--
-- Name: gifts_reference_unique; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX gifts_reference_unique ON public.gifts USING btree (merchant_id, reference) WHERE (reference IS NOT NULL);


--
-- Name: gifts_waiting_for_owner; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX gifts_waiting_for_owner ON public.gifts USING btree (merchant_id, recipient_owner_id, created_at DESC, id DESC) WHERE ((state = 'waiting'::text) AND (recipient_owner_id IS NOT NULL));


--
-- Name: idempotency_keys_age; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idempotency_keys_age ON public.idempotency_keys USING btree (created_at);


--
-- Name: images_unused_photos; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX images_unused_photos ON public.images USING btree (created_at) WHERE (purpose = 'photo'::text);


--
-- Name: leases_expiry; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX leases_expiry ON public.leases USING btree (expires_at);


--
-- Name: ledger_by_card; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ledger_by_card ON public.ledger_entries USING btree (merchant_id, card_id, id);


--
-- Name: ledger_by_terminal; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ledger_by_terminal ON public.ledger_entries USING btree (merchant_id, actor_id, created_at) WHERE (actor_type = 'terminal'::text);


--
-- Name: ledger_one_issue_per_card; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX ledger_one_issue_per_card ON public.ledger_entries USING btree (merchant_id, card_id) WHERE (kind = 'issue'::text);


--
-- Name: ledger_refunds; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ledger_refunds ON public.ledger_entries USING btree (merchant_id, refund_of) WHERE (refund_of IS NOT NULL);


--
-- Name: signing_keys_one_active; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX signing_keys_one_active ON public.signing_keys USING btree ((true)) WHERE (state = 'active'::text);


--
-- Name: staff_log_by_store; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX staff_log_by_store ON public.staff_log USING btree (merchant_id, store_id, id);


--
-- Name: staff_log_by_terminal; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX staff_log_by_terminal ON public.staff_log USING btree (merchant_id, terminal_id, id);


--
-- Name: terminal_enrollments_by_code; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX terminal_enrollments_by_code ON public.terminal_enrollments USING btree (code_hash);


--
-- Name: terminals_by_store; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX terminals_by_store ON public.terminals USING btree (merchant_id, store_id, created_at);


--
-- Name: wallet_sessions_by_expiry; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX wallet_sessions_by_expiry ON public.wallet_sessions USING btree (expires_at);


--
-- Name: wechat_callback_nonces_age; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX wechat_callback_nonces_age ON public.wechat_callback_nonces USING btree (seen_at);


--
-- Name: wechat_discrepancies_open; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX wechat_discrepancies_open ON public.wechat_discrepancies USING btree (merchant_id, id) WHERE (resolved_at IS NULL);


--
-- Name: wechat_events_by_card; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX wechat_events_by_card ON public.wechat_events USING btree (merchant_id, card_id, received_at) WHERE (card_id IS NOT NULL);


--
-- Name: wechat_outbox_by_card; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX wechat_outbox_by_card ON public.wechat_outbox USING btree (merchant_id, card_id, id);


--
-- Name: wechat_outbox_due; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX wechat_outbox_due ON public.wechat_outbox USING btree (id) WHERE (state = 'pending'::text);


--
-- Name: wechat_outbox_open_by_card; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX wechat_outbox_open_by_card ON public.wechat_outbox USING btree (merchant_id, card_id, id) WHERE (state = ANY (ARRAY['pending'::text, 'parked'::text]));


--
-- Name: wechat_outbox_parked; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX wechat_outbox_parked ON public.wechat_outbox USING btree (merchant_id, id) WHERE (state = 'parked'::text);


--
-- Name: cards card_balance_matches_ledger; Type: TRIGGER; Schema: public; Owner: -
--

CREATE CONSTRAINT TRIGGER card_balance_matches_ledger AFTER INSERT OR UPDATE OF balance ON public.cards DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.card_check_balance_matches_ledger();


--
-- Name: cards card_passed_on; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER card_passed_on BEFORE UPDATE OF owner_id, code_hash ON public.cards FOR EACH ROW WHEN (((old.owner_id IS DISTINCT FROM new.owner_id) OR (old.code_hash IS DISTINCT FROM new.code_hash))) EXECUTE FUNCTION public.card_next_payload_generation();


--
-- Name: ledger_entries ledger_append_only; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER ledger_append_only BEFORE DELETE OR UPDATE ON public.ledger_entries FOR EACH ROW EXECUTE FUNCTION public.refuse_change('ledger entries are append-only', 'ledger_append_only');


--
-- Name: ledger_entries ledger_append_only_truncate; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER ledger_append_only_truncate BEFORE TRUNCATE ON public.ledger_entries FOR EACH STATEMENT EXECUTE FUNCTION public.refuse_change('ledger entries are append-only', 'ledger_append_only');


--
-- Name: ledger_entries ledger_chain; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER ledger_chain BEFORE INSERT ON public.ledger_entries FOR EACH ROW WHEN (((new.kind <> 'issue'::text) OR (new.balance_after <> new.amount))) EXECUTE FUNCTION public.ledger_check_chain();


--
-- Name: staff_log staff_log_append_only; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER staff_log_append_only BEFORE DELETE OR UPDATE ON public.staff_log FOR EACH ROW EXECUTE FUNCTION public.refuse_change('the staff log is append-only', 'staff_log_append_only');


--
-- Name: staff_log staff_log_append_only_truncate; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER staff_log_append_only_truncate BEFORE TRUNCATE ON public.staff_log FOR EACH STATEMENT EXECUTE FUNCTION public.refuse_change('the staff log is append-only', 'staff_log_append_only');


--
-- Name: ledger_entries wechat_outbox_feed; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER wechat_outbox_feed AFTER INSERT ON public.ledger_entries FOR EACH ROW WHEN ((new.kind <> ALL (ARRAY['issue'::text, 'activate'::text, 'block'::text, 'unblock'::text]))) EXECUTE FUNCTION public.wechat_outbox_enqueue();


--
-- Name: api_keys api_keys_merchant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_merchant_id_fkey FOREIGN KEY (merchant_id) REFERENCES public.merchants(id);


--
-- Name: card_access card_access_key_exists; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.card_access
    ADD CONSTRAINT card_access_key_exists FOREIGN KEY (merchant_id, api_key_id) REFERENCES public.api_keys(merchant_id, id);


--
-- Name: card_access card_access_merchant_id_card_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.card_access
    ADD CONSTRAINT card_access_merchant_id_card_id_fkey FOREIGN KEY (merchant_id, card_id) REFERENCES public.cards(merchant_id, id);


--
-- Name: card_access card_access_merchant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.card_access
    ADD CONSTRAINT card_access_merchant_id_fkey FOREIGN KEY (merchant_id) REFERENCES public.merchants(id);


--
-- Name: card_batches card_batches_merchant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.card_batches
    ADD CONSTRAINT card_batches_merchant_id_fkey FOREIGN KEY (merchant_id) REFERENCES public.merchants(id);


--
-- Name: cards card_design_of_its_merchant; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cards
    ADD CONSTRAINT card_design_of_its_merchant FOREIGN KEY (merchant_id, design_id) REFERENCES public.designs(merchant_id, id);


--
-- Name: cards cards_merchant_id_batch_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cards
    ADD CONSTRAINT cards_merchant_id_batch_id_fkey FOREIGN KEY (merchant_id, batch_id) REFERENCES public.card_batches(merchant_id, id);


--
-- Name: cards cards_merchant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cards
    ADD CONSTRAINT cards_merchant_id_fkey FOREIGN KEY (merchant_id) REFERENCES public.merchants(id);


--
-- Name: customise_sessions customise_session_key_exists; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.customise_sessions
    ADD CONSTRAINT customise_session_key_exists FOREIGN KEY (merchant_id, api_key_id) REFERENCES public.api_keys(merchant_id, id);


--
-- Name: customise_sessions customise_sessions_merchant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.customise_sessions
    ADD CONSTRAINT customise_sessions_merchant_id_fkey FOREIGN KEY (merchant_id) REFERENCES public.merchants(id);


--
-- Name: designs designs_merchant_id_cover_image_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.designs
    ADD CONSTRAINT designs_merchant_id_cover_image_id_fkey FOREIGN KEY (merchant_id, cover_image_id) REFERENCES public.images(merchant_id, id);


--
-- Name: designs designs_merchant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.designs
    ADD CONSTRAINT designs_merchant_id_fkey FOREIGN KEY (merchant_id) REFERENCES public.merchants(id);


--
-- Name: gifts gifts_merchant_id_card_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.gifts
    ADD CONSTRAINT gifts_merchant_id_card_id_fkey FOREIGN KEY (merchant_id, card_id) REFERENCES public.cards(merchant_id, id);


--
-- Name: gifts gifts_merchant_id_design_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.gifts
    ADD CONSTRAINT gifts_merchant_id_design_id_fkey FOREIGN KEY (merchant_id, design_id) REFERENCES public.designs(merchant_id, id);


--
-- Name: gifts gifts_merchant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.gifts
    ADD CONSTRAINT gifts_merchant_id_fkey FOREIGN KEY (merchant_id) REFERENCES public.merchants(id);


--
-- Name: gifts gifts_merchant_id_photo_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.gifts
    ADD CONSTRAINT gifts_merchant_id_photo_id_fkey FOREIGN KEY (merchant_id, photo_id) REFERENCES public.images(merchant_id, id);


--
-- Name: gifts gifts_merchant_id_previous_gift_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.gifts
    ADD CONSTRAINT gifts_merchant_id_previous_gift_id_fkey FOREIGN KEY (merchant_id, previous_gift_id) REFERENCES public.gifts(merchant_id, id);


--
-- Name: images images_merchant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.images
    ADD CONSTRAINT images_merchant_id_fkey FOREIGN KEY (merchant_id) REFERENCES public.merchants(id);


--
-- Name: leases leases_merchant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.leases
    ADD CONSTRAINT leases_merchant_id_fkey FOREIGN KEY (merchant_id) REFERENCES public.merchants(id);


--
-- Name: ledger_entries ledger_entries_merchant_id_card_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ledger_entries
    ADD CONSTRAINT ledger_entries_merchant_id_card_id_fkey FOREIGN KEY (merchant_id, card_id) REFERENCES public.cards(merchant_id, id);


--
-- Name: ledger_entries ledger_entries_merchant_id_refund_of_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ledger_entries
    ADD CONSTRAINT ledger_entries_merchant_id_refund_of_fkey FOREIGN KEY (merchant_id, refund_of) REFERENCES public.ledger_entries(merchant_id, id);


--
-- Name: ledger_entries ledger_store_exists; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ledger_entries
    ADD CONSTRAINT ledger_store_exists FOREIGN KEY (merchant_id, store_id) REFERENCES public.stores(merchant_id, id);


--
-- Name: staff_log staff_log_merchant_id_terminal_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.staff_log
    ADD CONSTRAINT staff_log_merchant_id_terminal_id_fkey FOREIGN KEY (merchant_id, terminal_id) REFERENCES public.terminals(merchant_id, id);


--
-- Name: stores stores_merchant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.stores
    ADD CONSTRAINT stores_merchant_id_fkey FOREIGN KEY (merchant_id) REFERENCES public.merchants(id);


--
-- Name: terminal_enrollments terminal_enrollment_key_exists; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.terminal_enrollments
    ADD CONSTRAINT terminal_enrollment_key_exists FOREIGN KEY (merchant_id, api_key_id) REFERENCES public.api_keys(merchant_id, id);


--
-- Name: terminal_enrollments terminal_enrollments_merchant_id_terminal_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.terminal_enrollments
    ADD CONSTRAINT terminal_enrollments_merchant_id_terminal_id_fkey FOREIGN KEY (merchant_id, terminal_id) REFERENCES public.terminals(merchant_id, id);


--
-- Name: terminals terminals_merchant_id_store_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.terminals
    ADD CONSTRAINT terminals_merchant_id_store_id_fkey FOREIGN KEY (merchant_id, store_id) REFERENCES public.stores(merchant_id, id);


--
-- Name: wallet_sessions wallet_session_key_exists; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wallet_sessions
    ADD CONSTRAINT wallet_session_key_exists FOREIGN KEY (merchant_id, api_key_id) REFERENCES public.api_keys(merchant_id, id);


--
-- Name: wallet_sessions wallet_sessions_merchant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wallet_sessions
    ADD CONSTRAINT wallet_sessions_merchant_id_fkey FOREIGN KEY (merchant_id) REFERENCES public.merchants(id);


--
-- Name: wechat_accounts wechat_accounts_merchant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wechat_accounts
    ADD CONSTRAINT wechat_accounts_merchant_id_fkey FOREIGN KEY (merchant_id) REFERENCES public.merchants(id);


--
-- Name: wechat_callback_nonces wechat_callback_nonces_merchant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wechat_callback_nonces
    ADD CONSTRAINT wechat_callback_nonces_merchant_id_fkey FOREIGN KEY (merchant_id) REFERENCES public.merchants(id);


--
-- Name: wechat_card_codes wechat_card_codes_merchant_id_card_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wechat_card_codes
    ADD CONSTRAINT wechat_card_codes_merchant_id_card_id_fkey FOREIGN KEY (merchant_id, card_id) REFERENCES public.cards(merchant_id, id);


--
-- Name: wechat_card_codes wechat_card_codes_merchant_id_wechat_card_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wechat_card_codes
    ADD CONSTRAINT wechat_card_codes_merchant_id_wechat_card_id_fkey FOREIGN KEY (merchant_id, wechat_card_id) REFERENCES public.wechat_cards(merchant_id, wechat_card_id);


--
-- Name: wechat_cards wechat_cards_merchant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wechat_cards
    ADD CONSTRAINT wechat_cards_merchant_id_fkey FOREIGN KEY (merchant_id) REFERENCES public.merchants(id);


--
-- Name: wechat_credentials wechat_credentials_merchant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wechat_credentials
    ADD CONSTRAINT wechat_credentials_merchant_id_fkey FOREIGN KEY (merchant_id) REFERENCES public.wechat_accounts(merchant_id) ON DELETE CASCADE;


--
-- Name: wechat_discrepancies wechat_discrepancies_merchant_id_card_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wechat_discrepancies
    ADD CONSTRAINT wechat_discrepancies_merchant_id_card_id_fkey FOREIGN KEY (merchant_id, card_id) REFERENCES public.cards(merchant_id, id);


--
-- Name: wechat_events wechat_events_merchant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wechat_events
    ADD CONSTRAINT wechat_events_merchant_id_fkey FOREIGN KEY (merchant_id) REFERENCES public.merchants(id);


--
-- Name: wechat_outbox wechat_outbox_merchant_id_card_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wechat_outbox
    ADD CONSTRAINT wechat_outbox_merchant_id_card_id_fkey FOREIGN KEY (merchant_id, card_id) REFERENCES public.cards(merchant_id, id);


--
-- Name: wechat_outbox wechat_outbox_merchant_id_ledger_entry_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wechat_outbox
    ADD CONSTRAINT wechat_outbox_merchant_id_ledger_entry_id_fkey FOREIGN KEY (merchant_id, ledger_entry_id) REFERENCES public.ledger_entries(merchant_id, id);


--
-- PostgreSQL database dump complete
--
