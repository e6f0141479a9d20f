-- Single sign-on: each organisation's connection to its identity provider, the link
-- from a provider identity to a user, and the single-use state of sign-ins in flight.
-- See docs/sso.md.

-- One connection per protocol per organisation. `settings` holds no secret: the OIDC
-- client secret lives in the vault (secret `sso/<org>/oidc-client-secret`). Whether a
-- first SSO sign-in may create the user is the organisation's `sso_jit_provisioning`
-- (0008, default off).
CREATE TABLE app.sso_connections (
    org_id           uuid NOT NULL REFERENCES app.organisations (id) ON DELETE CASCADE,
    protocol         text NOT NULL CHECK (protocol IN ('oidc', 'saml')),
    settings         jsonb NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, protocol)
);
CALL app.declare_tenant_table('app.sso_connections');

-- A provider identity (`oidc:<tid>:<oid>`, `saml:<idp entity>:<NameID>`) belongs to one
-- user. Never keyed by e-mail address.
CREATE TABLE app.sso_identities (
    org_id      uuid NOT NULL,
    subject_key text NOT NULL CHECK (length(subject_key) BETWEEN 1 AND 1024),
    user_id     uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, subject_key),
    FOREIGN KEY (org_id, user_id) REFERENCES app.users (org_id, id) ON DELETE CASCADE
);
CALL app.declare_tenant_table('app.sso_identities');

-- Sign-ins in flight. Found by the SHA-256 of `state` (OIDC) or of the request id
-- (SAML) together with the SHA-256 of the browser-binding cookie, and deleted when
-- used, so each works once and only in the browser that started it.
CREATE TABLE app.sso_login_requests (
    org_id        uuid NOT NULL,
    lookup_hash   bytea NOT NULL CHECK (length(lookup_hash) = 32),
    browser_hash  bytea NOT NULL CHECK (length(browser_hash) = 32),
    protocol      text NOT NULL CHECK (protocol IN ('oidc', 'saml')),
    nonce         text,
    pkce_verifier text,
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (org_id, lookup_hash)
);
CALL app.declare_tenant_table('app.sso_login_requests');

-- SAML assertion ids seen, kept until the assertion expires (replay cache).
CREATE TABLE app.sso_assertion_replay (
    org_id       uuid NOT NULL,
    assertion_id text NOT NULL CHECK (length(assertion_id) BETWEEN 1 AND 256),
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (org_id, assertion_id)
);
CALL app.declare_tenant_table('app.sso_assertion_replay');
