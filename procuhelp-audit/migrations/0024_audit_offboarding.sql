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

-- The chain-link check of 0006, refusing appends to an offboarded organisation (the
-- rest unchanged).
CREATE OR REPLACE FUNCTION app.audit_check_links() RETURNS trigger
    LANGUAGE plpgsql VOLATILE
    SET plan_cache_mode = force_custom_plan
    AS $$
DECLARE
    bad bigint;
    head record;
    prev bytea;
BEGIN
    FOR head IN
        SELECT DISTINCT ON (n.org_id) n.org_id, n.seq, n.prev_hash
        FROM new_rows n ORDER BY n.org_id, n.seq
    LOOP
        -- An offboarded organisation takes no new events: an append still in flight when
        -- its rows were deleted must not leave a trail behind its tombstone.
        IF EXISTS (SELECT 1 FROM app.offboarded_organisations t WHERE t.id = head.org_id) THEN
            RAISE EXCEPTION 'organisation % was offboarded', head.org_id USING ERRCODE = 'PH404';
        END IF;
        IF head.seq = 1 THEN
            prev := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
        ELSE
            SELECT e.hash INTO prev FROM app.audit_events e
            WHERE e.org_id = head.org_id AND e.seq = head.seq - 1;
        END IF;
        IF prev IS DISTINCT FROM head.prev_hash THEN
            RAISE EXCEPTION 'audit chain link broken at seq %', head.seq USING ERRCODE = 'PH409';
        END IF;
    END LOOP;
    SELECT l.seq INTO bad FROM (
        SELECT n.seq, n.prev_hash,
               lag(n.seq) OVER w AS prev_seq, lag(n.hash) OVER w AS prev_row_hash
        FROM new_rows n
        WINDOW w AS (PARTITION BY n.org_id ORDER BY n.seq)
    ) l
    WHERE l.prev_seq IS NOT NULL
      AND (l.seq <> l.prev_seq + 1 OR l.prev_hash IS DISTINCT FROM l.prev_row_hash)
    ORDER BY l.seq
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'audit chain link broken at seq %', bad USING ERRCODE = 'PH409';
    END IF;
    RETURN NULL;
END $$;
