-- Contracts with a supplier (issue #15): created, amended (each amendment a new version,
-- kept; the history is the versions), terminated. `current_version` moves by one in the
-- statement that adds a version, on the version the person saw: of two concurrent
-- amendments one wins and the other is told, nothing is lost. Versions are never changed
-- or deleted by the server (INSERT and SELECT only).
CREATE TABLE app.contracts (
    org_id          uuid NOT NULL REFERENCES app.organisations (id) ON DELETE CASCADE,
    id              uuid NOT NULL,
    supplier_id     uuid NOT NULL,
    title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    status          text NOT NULL CHECK (status IN ('active', 'terminated')),
    current_version integer NOT NULL CHECK (current_version >= 1),
    created_by      uuid NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    terminated_by   uuid,
    terminated_at   timestamptz,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, supplier_id) REFERENCES app.suppliers (org_id, id),
    CHECK ((status = 'terminated') = (terminated_at IS NOT NULL AND terminated_by IS NOT NULL))
);
CREATE INDEX contracts_by_supplier ON app.contracts (org_id, supplier_id);
CREATE INDEX contracts_by_creator ON app.contracts (org_id, created_by);
CREATE INDEX contracts_by_terminator ON app.contracts (org_id, terminated_by);
CALL app.declare_tenant_table('app.contracts');

CREATE TABLE app.contract_versions (
    org_id      uuid NOT NULL REFERENCES app.organisations (id) ON DELETE CASCADE,
    contract_id uuid NOT NULL,
    version     integer NOT NULL CHECK (version >= 1),
    value_cents bigint NOT NULL CHECK (value_cents >= 0),
    starts_on   date NOT NULL,
    ends_on     date NOT NULL,
    terms       text NOT NULL CHECK (length(terms) <= 5000),
    changed_by  uuid NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, contract_id, version),
    FOREIGN KEY (org_id, contract_id) REFERENCES app.contracts (org_id, id) ON DELETE CASCADE,
    CHECK (ends_on >= starts_on)
);
CREATE INDEX contract_versions_by_author ON app.contract_versions (org_id, changed_by);
CALL app.declare_tenant_table('app.contract_versions');
