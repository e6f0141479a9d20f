-- Finding one person's rows (a data subject's export or erasure, issue #14) reads every
-- table by each column that holds a user id. The personal-data register's check refuses a
-- user id that no index leads with (after org_id): without one, the lookup scans the
-- organisation's rows. Partial indexes do not serve it (the lookup has no predicate), so
-- the sessions index becomes a full one; it still serves the live-session lookups.
DROP INDEX app.sessions_by_user;
CREATE INDEX sessions_by_user ON app.sessions (org_id, user_id);
CREATE INDEX users_by_handed_over_by ON app.users (org_id, scim_handed_over_by);
CREATE INDEX api_tokens_by_creator ON app.api_tokens (org_id, created_by);
CREATE INDEX scim_tokens_by_creator ON app.scim_tokens (org_id, created_by);
CREATE INDEX elevations_by_user ON app.elevations (org_id, user_id);
CREATE INDEX elevations_by_requester ON app.elevations (org_id, requested_by);
CREATE INDEX elevations_by_approver ON app.elevations (org_id, approved_by);
CREATE INDEX policy_changes_by_requester ON app.policy_changes (org_id, requested_by);
CREATE INDEX policy_changes_by_approver ON app.policy_changes (org_id, approved_by);
CREATE INDEX sso_identities_by_user ON app.sso_identities (org_id, user_id);
