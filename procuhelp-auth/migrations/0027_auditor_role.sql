-- The auditor role (issue #15): reads what a read-only user reads, and the audit log;
-- changes nothing. Roles are not a chain any more (an auditor reads the audit log, an
-- approver does not), so the Rust side caps hand-outs by permission sets
-- (procuhelp_auth::Role::covers); `role_rank` stays the one total order used to choose
-- among elevations in force, as the transactional lookup does (Role's declaration order):
-- every elevation is created above its user's role in both orders.
ALTER TABLE app.users DROP CONSTRAINT users_role_check,
    ADD CONSTRAINT users_role_check
    CHECK (role IN ('admin', 'approver', 'requester', 'auditor', 'read_only'));
ALTER TABLE app.api_tokens DROP CONSTRAINT api_tokens_role_check,
    ADD CONSTRAINT api_tokens_role_check
    CHECK (role IN ('admin', 'approver', 'requester', 'auditor', 'read_only'));
ALTER TABLE app.scim_role_mappings DROP CONSTRAINT scim_role_mappings_role_check,
    ADD CONSTRAINT scim_role_mappings_role_check
    CHECK (role IN ('admin', 'approver', 'requester', 'auditor', 'read_only'));
ALTER TABLE app.elevations DROP CONSTRAINT elevations_role_check,
    ADD CONSTRAINT elevations_role_check
    CHECK (role IN ('admin', 'approver', 'requester', 'auditor'));

CREATE OR REPLACE FUNCTION app.role_rank(role text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE role WHEN 'admin' THEN 0 WHEN 'approver' THEN 1
                           WHEN 'requester' THEN 2 WHEN 'auditor' THEN 3
                           WHEN 'read_only' THEN 4 END $$;
