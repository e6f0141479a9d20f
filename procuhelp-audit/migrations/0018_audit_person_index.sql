-- A data subject's access request reads every event by or about one person (issue #14):
-- without these it is a scan of the organisation's whole trail.
CREATE INDEX audit_events_by_actor ON app.audit_events (org_id, actor_id) WHERE actor_id IS NOT NULL;
CREATE INDEX audit_events_by_subject ON app.audit_events (org_id, subject) WHERE subject IS NOT NULL;
CREATE INDEX audit_events_by_target ON app.audit_events (org_id, target) WHERE target LIKE 'user:%';
