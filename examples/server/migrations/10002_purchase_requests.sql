-- Purchase requests: the procurement object that segregation of duties protects.
-- (Was part of the SDK's 0005 before each crate owned its migrations.) A tenant table
-- declared with the same helper every embedder uses: `org_id uuid NOT NULL`, then
-- `CALL app.declare_tenant_table(...)` (row-level security enabled, forced, one policy).
CREATE TABLE app.purchase_requests (
    org_id       uuid NOT NULL REFERENCES app.organisations (id) ON DELETE CASCADE,
    id           uuid NOT NULL,
    title        text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    amount_cents bigint NOT NULL CHECK (amount_cents > 0),
    requested_by uuid NOT NULL,
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'approved')),
    approved_by  uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    -- Segregation of duties, enforced by the database too.
    CHECK (approved_by IS NULL OR approved_by <> requested_by)
);
CALL app.declare_tenant_table('app.purchase_requests');
