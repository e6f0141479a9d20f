-- Offboarding (issue #14, point 4): an organisation's audit events, checkpoints and person
-- keys are deleted with the rest of its rows — but only once its tombstone
-- (app.offboarded_organisations, written by the schema owner in the same transaction)
-- exists. Everything else stays append-only, for everybody; TRUNCATE stays refused. The
-- runtime role has no DELETE privilege on these tables in any case.
CREATE OR REPLACE FUNCTION app.audit_refuse_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    -- Nested: the tombstone table is only read for a DELETE (which only the owner can run).
    IF TG_OP = 'DELETE' THEN
        IF EXISTS (SELECT 1 FROM app.offboarded_organisations t WHERE t.id = OLD.org_id) THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'PH423';
END $$;

CREATE OR REPLACE FUNCTION app.audit_person_key_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    -- Nested: the tombstone table is only read for a DELETE (which only the owner can run).
    IF TG_OP = 'DELETE' THEN
        IF EXISTS (SELECT 1 FROM app.offboarded_organisations t WHERE t.id = OLD.org_id) THEN
            RETURN OLD;
        END IF;
    END IF;
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'audit person keys are never deleted (erase them)' USING ERRCODE = 'PH423';
    END IF;
    IF OLD.erased_at IS NOT NULL THEN
        RAISE EXCEPTION 'an erased audit person key stays erased' USING ERRCODE = 'PH423';
    END IF;
    IF NEW.org_id <> OLD.org_id OR NEW.id <> OLD.id OR NEW.subject <> OLD.subject
       OR NEW.created_at <> OLD.created_at THEN
        RAISE EXCEPTION 'only wrapped, kek_version and erased_at may change' USING ERRCODE = 'PH423';
    END IF;
    RETURN NEW;
END $$;
