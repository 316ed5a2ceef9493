-- The staff log is append-only, like the ledger (its table: schema/migrations/0003).

CREATE OR REPLACE FUNCTION staff_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the staff log is append-only (% refused)', TG_OP
        USING ERRCODE = 'restrict_violation', CONSTRAINT = 'staff_log_append_only';
END $$;
CREATE OR REPLACE TRIGGER staff_log_append_only BEFORE UPDATE OR DELETE ON staff_log
    FOR EACH ROW EXECUTE FUNCTION staff_log_refuse_change();
CREATE OR REPLACE TRIGGER staff_log_append_only_truncate BEFORE TRUNCATE ON staff_log
    FOR EACH STATEMENT EXECUTE FUNCTION staff_log_refuse_change();
