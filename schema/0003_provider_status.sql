-- +goose Up
-- The derived provider status of each Twilio message, keyed by MessageSid. It is the maximum of
-- every callback received under a strict total order (rank, status, error code), so duplicates
-- and any arrival order give the same row. A callback that arrives before Herald recorded the
-- SID on its message is kept here and joins the message through messages.provider_sid.
CREATE TABLE message_provider_status (
    message_sid   text        PRIMARY KEY,
    status        text        NOT NULL,
    status_rank   int         NOT NULL,
    error_code    int,
    error_message text        NOT NULL DEFAULT '',
    phone         text        NOT NULL DEFAULT '',
    message_id    text        NOT NULL DEFAULT '',
    callbacks     int         NOT NULL,
    first_at      timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX message_provider_status_phone_idx ON message_provider_status (phone);

ALTER TABLE events_inbound ADD COLUMN profile_name text NOT NULL DEFAULT '';
ALTER TABLE delivery_receipts ADD COLUMN error_message text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE delivery_receipts DROP COLUMN error_message;
ALTER TABLE events_inbound DROP COLUMN profile_name;
DROP TABLE message_provider_status;
