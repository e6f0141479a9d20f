-- The testkit's tenant table (feature `testkit`), for the SDK's own tests: declared with
-- the helper every embedder uses. Versions 9000-9999 are the SDK's test scaffolding.
CREATE TABLE app.test_records (
    org_id      uuid NOT NULL REFERENCES app.organisations (id) ON DELETE CASCADE,
    id          uuid NOT NULL,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    country     text NOT NULL DEFAULT 'DE' CHECK (country ~ '^[A-Z]{2}$'),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('invited', 'active', 'suspended', 'archived')),
    created_by  uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- A field sealed by the field cipher (AAD: org, "test_records", "secret", row).
    secret_sealed bytea,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX test_records_by_name ON app.test_records (org_id, name, id);
CALL app.declare_tenant_table('app.test_records');
