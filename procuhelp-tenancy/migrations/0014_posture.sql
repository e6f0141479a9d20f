-- Posture (issue #11): every row-level-secured table FORCEs RLS, and SECURITY DEFINER
-- functions pin search_path.

-- 0004 turned FORCE off on app.organisations so that key jobs, run as the owner, could
-- list every organisation; that also let the owner read *and write* every row outside
-- RLS. FORCE it again and give the owner exactly what those jobs need: reading the list
-- (app.organisation_ids in the library refuses any other role). The runtime role is not
-- the owner (the posture check verifies it), so this policy never applies to it; it
-- keeps reading and updating only its own organisation through tenant_isolation.
ALTER TABLE app.organisations FORCE ROW LEVEL SECURITY;
DO $$
BEGIN
    EXECUTE format(
        'CREATE POLICY owner_lists_organisations ON app.organisations FOR SELECT TO %I USING (true)',
        (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'app.organisations'::regclass));
END $$;

-- A SECURITY DEFINER function resolves names with its caller's search_path unless it
-- pins its own; pin it on any that does not (pg_temp last: otherwise the temporary
-- schema is searched first for relations).
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_proc p
        WHERE p.pronamespace = 'app'::regnamespace AND p.prosecdef
          AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c(setting)
                          WHERE c.setting LIKE 'search\_path=%')
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, app, pg_temp', f);
    END LOOP;
END $$;
