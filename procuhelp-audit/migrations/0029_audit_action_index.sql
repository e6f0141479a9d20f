-- The audit viewer filters by action (issue #15's time-to-first-byte bench): a rare
-- action (`auth.account_locked`) in a 100,000-event chain was found by walking the chain
-- (31.7 ms in PostgreSQL); with this index and the filter written into the statement only
-- when given (`PgAuditSink::read_events`), 0.27 ms. The actor and time filters already
-- have theirs (0018, 0006).
CREATE INDEX audit_events_by_action ON app.audit_events (org_id, action, seq);
