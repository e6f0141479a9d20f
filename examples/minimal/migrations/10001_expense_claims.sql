-- The minimal app's own table: expense claims. Declared as any embedder's tenant table
-- is: `org_id uuid NOT NULL`, then `CALL app.declare_tenant_table(...)` (row-level
-- security enabled and forced, one policy on the transaction's organisation). Versions
-- 10000 and up are the application's (docs/tenancy.md, "Migrations").
CREATE TABLE app.expense_claims (
    org_id       uuid NOT NULL REFERENCES app.organisations (id) ON DELETE CASCADE,
    id           uuid NOT NULL,
    title        text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    amount_cents bigint NOT NULL CHECK (amount_cents > 0),
    claimed_by   uuid NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id)
);
CALL app.declare_tenant_table('app.expense_claims');
