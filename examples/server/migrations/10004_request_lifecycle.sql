-- Purchase requests' whole life (issue #15): a draft its requester edits, then submits
-- ('open'), then an approver (never the requester) approves or rejects it with a
-- comment; its requester may cancel it until it is decided. Each change bumps `version`,
-- so two people changing the same request at once cannot both win (the second is told).
ALTER TABLE app.purchase_requests DROP CONSTRAINT purchase_requests_status_check;
ALTER TABLE app.purchase_requests
    ADD CONSTRAINT purchase_requests_status_check
        CHECK (status IN ('draft', 'open', 'approved', 'rejected', 'cancelled')),
    ADD COLUMN rejected_by      uuid,
    ADD COLUMN decision_comment text CHECK (length(decision_comment) <= 1000),
    ADD COLUMN decided_at       timestamptz,
    ADD COLUMN version          integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    ADD COLUMN updated_at       timestamptz NOT NULL DEFAULT now(),
    -- Segregation of duties holds for rejections too.
    ADD CHECK (rejected_by IS NULL OR rejected_by <> requested_by),
    ADD CHECK ((status = 'approved') = (approved_by IS NOT NULL)),
    ADD CHECK ((status = 'rejected') = (rejected_by IS NOT NULL));
CREATE INDEX purchase_requests_by_rejecter ON app.purchase_requests (org_id, rejected_by);
