-- Single-round-trip tenant-scoped reads (TenantDb::fetch_all_once):
--
--   SELECT q.* FROM app.enter_org($1) AS tenant(org)
--   CROSS JOIN LATERAL (SELECT … FROM app.suppliers s WHERE s.org_id = tenant.org …) AS q
--
-- Sent as one autocommit statement, the transaction-local tenant lives exactly as long as
-- that statement. The LATERAL reference to tenant.org makes the query run after
-- enter_org; row-level security (its InitPlan is evaluated at first use, inside the
-- lateral query) filters as it does everywhere else.

-- enter_org now returns the organisation it entered, and refuses to switch a transaction
-- that already belongs to another organisation (e.g. a one-shot query smuggled into
-- another org's TenantTx).
DROP FUNCTION app.enter_org(uuid);
CREATE FUNCTION app.enter_org(org uuid) RETURNS uuid
    LANGUAGE plpgsql VOLATILE
    AS $$
DECLARE
    current_org uuid := app.current_org();
BEGIN
    IF org IS NULL THEN
        RAISE EXCEPTION 'no organisation given' USING ERRCODE = 'PH400';
    END IF;
    IF current_org IS NOT NULL AND current_org <> org THEN
        RAISE EXCEPTION 'this transaction already belongs to another organisation' USING ERRCODE = 'PH409';
    END IF;
    PERFORM set_config('procuhelp.org_id', org::text, true);
    IF NOT EXISTS (SELECT 1 FROM app.organisations WHERE id = org) THEN
        RAISE EXCEPTION 'unknown organisation' USING ERRCODE = 'PH404';
    END IF;
    RETURN org;
END $$;
