-- A supplier's contact fills in their company and bank details through an invitation
-- link (issue #15): no account, a single-use token (only its SHA-256 kept), expiring.
-- The IBAN is sealed by the field cipher (iban_sealed); iban_hint keeps the country and
-- last four characters for lists, so a list never decrypts.
CREATE TABLE app.supplier_invitations (
    org_id        uuid NOT NULL REFERENCES app.organisations (id) ON DELETE CASCADE,
    id            uuid NOT NULL,
    supplier_id   uuid NOT NULL,
    token_hash    bytea NOT NULL CHECK (length(token_hash) = 32),
    contact_email text NOT NULL CHECK (length(contact_email) BETWEEN 3 AND 320),
    created_by    uuid NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, supplier_id) REFERENCES app.suppliers (org_id, id) ON DELETE CASCADE,
    CHECK (expires_at > created_at AND expires_at <= created_at + interval '30 days')
);
CREATE UNIQUE INDEX supplier_invitations_by_token ON app.supplier_invitations (org_id, token_hash);
CREATE INDEX supplier_invitations_by_creator ON app.supplier_invitations (org_id, created_by);
CREATE INDEX supplier_invitations_by_supplier ON app.supplier_invitations (org_id, supplier_id);
CALL app.declare_tenant_table('app.supplier_invitations');

ALTER TABLE app.suppliers
    ADD COLUMN iban_hint text CHECK (iban_hint ~ '^[A-Z]{2}[^ ]* …[A-Z0-9]{4}$');
