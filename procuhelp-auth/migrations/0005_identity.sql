-- Who gets in: users, sessions, MFA recovery codes, API tokens, time-bound elevation,
-- and the login throttle. See docs/auth.md.

-- Organisation-wide authentication policy, changed by the org's admins through the
-- server (column-level UPDATE grant: nothing else of the row is writable).
ALTER TABLE app.organisations
    ADD COLUMN mfa_required boolean NOT NULL DEFAULT false,
    ADD COLUMN elevation_needs_second_admin boolean NOT NULL DEFAULT false;

CREATE TABLE app.users (
    org_id        uuid NOT NULL REFERENCES app.organisations (id) ON DELETE CASCADE,
    id            uuid NOT NULL,
    -- Normalised (trimmed, lower-case) by the application; the check keeps it so.
    email         text NOT NULL CHECK (length(email) BETWEEN 3 AND 254 AND email = lower(email)),
    display_name  text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    role          text NOT NULL DEFAULT 'read_only'
                  CHECK (role IN ('admin', 'approver', 'requester', 'read_only')),
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    -- Argon2id PHC string; NULL for users who sign in only through SSO.
    password_hash text CHECK (password_hash IS NULL OR password_hash LIKE '$argon2id$%'),
    -- TOTP secrets, sealed by the field cipher (AAD: org, app.users, column, user id).
    totp_sealed         bytea,
    totp_pending_sealed bytea,
    -- The last accepted time step: a code is never accepted twice.
    totp_last_step      bigint,
    created_at    timestamptz NOT NULL DEFAULT now(),
    changed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, email)
);
CALL app.declare_tenant_table('app.users');

CREATE TABLE app.recovery_codes (
    org_id    uuid NOT NULL,
    user_id   uuid NOT NULL,
    code_hash bytea NOT NULL CHECK (length(code_hash) = 32),
    PRIMARY KEY (org_id, user_id, code_hash),
    FOREIGN KEY (org_id, user_id) REFERENCES app.users (org_id, id) ON DELETE CASCADE
);
CALL app.declare_tenant_table('app.recovery_codes');

-- Browser sessions and service-account API tokens. Only SHA-256 of the 256-bit token is
-- stored. `stage` says what the session may do: 'mfa' (password accepted, second factor
-- pending: only the MFA step), 'enrol' (org requires MFA, user has none yet: only
-- enrolment), 'full'.
CREATE TABLE app.sessions (
    org_id       uuid NOT NULL,
    id           uuid NOT NULL,
    token_hash   bytea NOT NULL CHECK (length(token_hash) = 32),
    user_id      uuid NOT NULL,
    stage        text NOT NULL CHECK (stage IN ('mfa', 'enrol', 'full')),
    -- How the user authenticated (RFC 8176 values: pwd, otp, mfa, ...).
    amr          text[] NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    idle_secs    integer NOT NULL CHECK (idle_secs > 0),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    source       inet,
    user_agent   text CHECK (length(user_agent) <= 256),
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, token_hash),
    FOREIGN KEY (org_id, user_id) REFERENCES app.users (org_id, id) ON DELETE CASCADE
);
CREATE INDEX sessions_by_user ON app.sessions (org_id, user_id) WHERE revoked_at IS NULL;
CALL app.declare_tenant_table('app.sessions');

CREATE TABLE app.api_tokens (
    org_id      uuid NOT NULL REFERENCES app.organisations (id) ON DELETE CASCADE,
    id          uuid NOT NULL,
    token_hash  bytea NOT NULL CHECK (length(token_hash) = 32),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    role        text NOT NULL CHECK (role IN ('admin', 'approver', 'requester', 'read_only')),
    created_by  uuid NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, token_hash)
);
CALL app.declare_tenant_table('app.api_tokens');

-- Time-bound elevation: a higher role for a stated reason until expires_at. 'pending'
-- waits for a second admin where the org requires one.
CREATE TABLE app.elevations (
    org_id       uuid NOT NULL,
    id           uuid NOT NULL,
    user_id      uuid NOT NULL,
    role         text NOT NULL CHECK (role IN ('admin', 'approver', 'requester')),
    reason       text NOT NULL CHECK (length(reason) BETWEEN 3 AND 500),
    state        text NOT NULL CHECK (state IN ('pending', 'active', 'revoked', 'expired')),
    requested_by uuid NOT NULL,
    approved_by  uuid,
    duration_secs integer NOT NULL CHECK (duration_secs BETWEEN 60 AND 28800),
    created_at   timestamptz NOT NULL,
    starts_at    timestamptz,
    expires_at   timestamptz,
    ended_at     timestamptz,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, user_id) REFERENCES app.users (org_id, id) ON DELETE CASCADE,
    CHECK (approved_by IS NULL OR approved_by <> requested_by),
    CHECK ((state = 'pending') = (starts_at IS NULL))
);
CREATE INDEX elevations_active ON app.elevations (org_id, user_id) WHERE state = 'active';
CALL app.declare_tenant_table('app.elevations');

-- Failed sign-ins per account and per source address. Not a tenant table: it is
-- consulted before anyone is authenticated, and holds only keyed hashes and counters.
CREATE TABLE app.login_throttle (
    key_hash      bytea PRIMARY KEY CHECK (length(key_hash) = 32),
    failures      integer NOT NULL CHECK (failures >= 0),
    last_failure  timestamptz NOT NULL,
    blocked_until timestamptz,
    locked        boolean NOT NULL DEFAULT false
);
