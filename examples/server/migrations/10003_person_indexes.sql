-- A person's rows are found by each user-id column (issue #14): see the SDK's 0019.
CREATE INDEX suppliers_by_creator ON app.suppliers (org_id, created_by);
CREATE INDEX purchase_requests_by_requester ON app.purchase_requests (org_id, requested_by);
CREATE INDEX purchase_requests_by_approver ON app.purchase_requests (org_id, approved_by);
