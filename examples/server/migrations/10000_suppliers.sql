-- Suppliers: the first tenant table, and the pattern later tables follow.
CREATE TABLE app.suppliers (
    org_id      uuid NOT NULL REFERENCES app.organisations (id) ON DELETE CASCADE,
    id          uuid NOT NULL,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    country     text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    vat_id      text CHECK (vat_id ~ '^[A-Z0-9]{2,32}$'),
    status      text NOT NULL CHECK (status IN ('invited', 'active', 'suspended', 'archived')),
    created_by  uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- The tenant leads every key: point reads use this index, and child tables can
    -- reference (org_id, id) so a reference can never cross tenants.
    PRIMARY KEY (org_id, id)
);
CREATE INDEX suppliers_by_name ON app.suppliers (org_id, name, id);

CALL app.declare_tenant_table('app.suppliers');
