-- Per-tenant data keys (DEKs), stored wrapped by the tenant's key-encryption key (KEK),
-- which lives in the SecretProvider (vault) and never here. See docs/encryption.md.

-- Key jobs (KEK rotation) run as the owner and must list every organisation. The runtime
-- role does not own the table, so ENABLE alone still binds it to its own row.
ALTER TABLE app.organisations NO FORCE ROW LEVEL SECURITY;

CREATE TABLE app.data_keys (
    org_id      uuid NOT NULL REFERENCES app.organisations (id) ON DELETE CASCADE,
    version     integer NOT NULL CHECK (version > 0),
    -- active: encrypts and decrypts (one per org); decrypt_only: kept for old rows;
    -- retired: refused; destroyed: wrapped key erased (crypto-shredding).
    state       text NOT NULL CHECK (state IN ('active', 'decrypt_only', 'retired', 'destroyed')),
    kek_version integer,
    wrapped     bytea,
    -- Encryptions handed out under this key (reserved in blocks, so an upper bound).
    encryptions_reserved bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    changed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, version),
    CHECK ((state = 'destroyed') = (wrapped IS NULL)),
    CHECK ((wrapped IS NULL) = (kek_version IS NULL))
);
CREATE UNIQUE INDEX data_keys_one_active ON app.data_keys (org_id) WHERE state = 'active';
CALL app.declare_tenant_table('app.data_keys');

-- What happened to keys: creation, rotation, rewrap, retirement, destruction.
CREATE TABLE app.key_events (
    org_id  uuid NOT NULL REFERENCES app.organisations (id) ON DELETE CASCADE,
    id      uuid NOT NULL DEFAULT gen_random_uuid(),
    event   text NOT NULL CHECK (event IN ('created', 'rotated', 'rewrapped', 'retired', 'destroyed')),
    version integer,
    detail  jsonb NOT NULL DEFAULT '{}',
    at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id)
);
CALL app.declare_tenant_table('app.key_events');
