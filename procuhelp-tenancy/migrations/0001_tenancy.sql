-- Tenancy foundation: the tenant of the current transaction and the one documented way to
-- declare a tenant table. See docs/tenancy.md.

CREATE SCHEMA app;

-- The organisation of the current transaction, or NULL when none is set. After a
-- transaction-local setting expires PostgreSQL returns '' rather than NULL, hence nullif.
-- NULL never equals any org_id, so with no tenant set, tenant tables return no rows and
-- WITH CHECK rejects every write: fail closed.
CREATE FUNCTION app.current_org() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('procuhelp.org_id', true), '')::uuid $$;

CREATE TABLE app.organisations (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- An organisation sees only its own row.
ALTER TABLE app.organisations ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.organisations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON app.organisations
    USING (id = (SELECT app.current_org()))
    WITH CHECK (id = (SELECT app.current_org()));

-- Enters an organisation for the rest of the current transaction (and only it: is_local
-- = true), refusing an organisation that does not exist. Called by TenantDb::begin in the
-- same round trip as BEGIN.
CREATE FUNCTION app.enter_org(org uuid) RETURNS void
    LANGUAGE plpgsql VOLATILE
    AS $$
BEGIN
    IF org IS NULL THEN
        RAISE EXCEPTION 'no organisation given' USING ERRCODE = 'PH400';
    END IF;
    PERFORM set_config('procuhelp.org_id', org::text, true);
    IF NOT EXISTS (SELECT 1 FROM app.organisations WHERE id = org) THEN
        RAISE EXCEPTION 'unknown organisation' USING ERRCODE = 'PH404';
    END IF;
END $$;

-- The one way to declare a tenant table: it must have `org_id uuid NOT NULL`; this turns
-- on row-level security, FORCES it (so the table owner is bound too), and adds the policy
-- with both USING (what can be seen, updated, deleted) and WITH CHECK (what can be
-- written). `(SELECT app.current_org())` is an uncorrelated sub-select: PostgreSQL runs
-- it once per statement as an InitPlan, and compares org_id to a constant, so
-- (org_id, …) indexes are used.
CREATE PROCEDURE app.declare_tenant_table(tbl regclass)
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_attribute
        WHERE attrelid = tbl AND attname = 'org_id' AND attnotnull AND NOT attisdropped
          AND atttypid = 'uuid'::regtype
    ) THEN
        RAISE EXCEPTION '% needs a column org_id uuid NOT NULL', tbl;
    END IF;
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format(
        'CREATE POLICY tenant_isolation ON %s '
        'USING (org_id = (SELECT app.current_org())) '
        'WITH CHECK (org_id = (SELECT app.current_org()))', tbl);
END $$;
