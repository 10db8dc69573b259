-- +goose Up
-- The send saga's read models (projections/messages.go): one row per outbound message with its
-- state, and the queue of messages due for work. 0002 sketched messages before its events
-- existed; nothing wrote to it.
DROP TABLE messages;
CREATE TABLE messages (
    id           uuid        PRIMARY KEY,
    kind         text        NOT NULL,                  -- campaign, trigger, reply
    campaign_id  text        NOT NULL DEFAULT '',
    run_id       text        NOT NULL DEFAULT '',
    trigger_id   text        NOT NULL DEFAULT '',
    phone        text        NOT NULL,
    state        text        NOT NULL,                  -- queued deferred attempted accepted unknown retrying skipped failed cancelled
    reason       text        NOT NULL DEFAULT '',       -- why skipped, deferred, failed or retried
    detail       text        NOT NULL DEFAULT '',
    provider_sid text,
    error_code   int,
    attempts     int         NOT NULL DEFAULT 0,
    locale       text        NOT NULL DEFAULT '',
    body         text        NOT NULL DEFAULT '',
    due_at       timestamptz,                           -- when work on it is due (NULL: none)
    queued_at    timestamptz NOT NULL,
    attempted_at timestamptz,
    updated_at   timestamptz NOT NULL,
    version      int         NOT NULL
);
CREATE INDEX messages_campaign_idx ON messages (campaign_id, state);
CREATE INDEX messages_phone_idx ON messages (phone, queued_at DESC);
CREATE INDEX messages_provider_sid_idx ON messages (provider_sid) WHERE provider_sid IS NOT NULL;
-- The saga's durable timers: messages due for a decision, a send, a retry or a reconciliation.
CREATE INDEX messages_due_idx ON messages (due_at) WHERE due_at IS NOT NULL;

-- Not a projection: which worker holds which due message, and until when. A lease that expires
-- (the worker died) makes the message due again; the saga's expected-version appends make a
-- second worker's decision fail rather than double anything.
CREATE TABLE send_leases (
    message_id  uuid        PRIMARY KEY,
    owner       text        NOT NULL,
    lease_until timestamptz NOT NULL
);

-- A campaign's runs: each launch, or each occurrence of a recurring campaign (projections.Campaigns).
CREATE TABLE campaign_runs (
    campaign_id     text        NOT NULL,
    run_id          text        NOT NULL,
    occurrence      timestamptz NOT NULL,
    started_at      timestamptz NOT NULL,
    materialized_at timestamptz,
    recipients      int,
    PRIMARY KEY (campaign_id, run_id)
);
CREATE INDEX campaign_runs_pending_idx ON campaign_runs (started_at) WHERE materialized_at IS NULL;

-- +goose Down
DROP TABLE campaign_runs;
DROP TABLE send_leases;
DROP TABLE messages;
CREATE TABLE messages (
    id            uuid        PRIMARY KEY,
    campaign_id   text,
    phone         text        NOT NULL,
    state         text        NOT NULL,
    status        text        NOT NULL DEFAULT '',
    provider_sid  text,
    error_code    int,
    reason        text        NOT NULL DEFAULT '',
    attempts      int         NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    version       int         NOT NULL
);
