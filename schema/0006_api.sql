-- +goose Up
-- The /v1 API's read models take the shape of the segment, template and campaign events
-- (0002 sketched them before those events existed; nothing wrote to them), and the API keeps
-- its Idempotency-Key records.

DROP TABLE segments;
CREATE TABLE segments (
    id          text        PRIMARY KEY,
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    rule        jsonb       NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    version     int         NOT NULL
);

DROP TABLE templates;
CREATE TABLE templates (
    id             text        PRIMARY KEY,
    name           text        NOT NULL,
    channel        text        NOT NULL CHECK (channel = 'whatsapp'),
    default_locale text        NOT NULL,
    variants       jsonb       NOT NULL, -- {"es-PE": {"body": …, "content_sid": …, "content_variables": {…}}, …}
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    version        int         NOT NULL
);

DROP TABLE campaigns;
CREATE TABLE campaigns (
    id            text        PRIMARY KEY,
    name          text        NOT NULL,
    topic         text        NOT NULL,
    template_id   text        NOT NULL,
    segment_id    text        NOT NULL DEFAULT '',
    segment_rule  jsonb,
    status        text        NOT NULL CHECK (status IN ('draft', 'scheduled', 'running', 'paused', 'completed', 'cancelled', 'failed')),
    schedule      jsonb       NOT NULL,
    rate_limit    jsonb       NOT NULL,
    quiet_hours   jsonb,
    retry         jsonb       NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    version       int         NOT NULL
);
CREATE INDEX campaigns_status_idx ON campaigns (status);

-- Not a projection: the API's memory of Idempotency-Key requests (24 h). A row with a null
-- status is a request in flight.
CREATE TABLE idempotency_keys (
    principal   text        NOT NULL, -- which API key sent it (a hash prefix, never the key)
    key         text        NOT NULL,
    method      text        NOT NULL,
    path        text        NOT NULL,
    body_hash   bytea       NOT NULL,
    status      int,
    response    bytea,
    headers     jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE campaigns;
DROP TABLE templates;
DROP TABLE segments;
CREATE TABLE segments (
    id          text        PRIMARY KEY,
    name        text        NOT NULL,
    definition  jsonb       NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    version     int         NOT NULL
);
CREATE TABLE templates (
    id          text        NOT NULL,
    locale      text        NOT NULL,
    channel     text        NOT NULL DEFAULT 'whatsapp' CHECK (channel = 'whatsapp'),
    name        text        NOT NULL,
    body        text        NOT NULL,
    content_sid text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    version     int         NOT NULL,
    PRIMARY KEY (id, locale)
);
CREATE TABLE campaigns (
    id            text        PRIMARY KEY,
    name          text        NOT NULL,
    topic         text        NOT NULL,
    template_id   text        NOT NULL,
    segment_id    text,
    status        text        NOT NULL CHECK (status IN ('draft', 'scheduled', 'running', 'paused', 'completed', 'cancelled')),
    schedule      jsonb       NOT NULL DEFAULT '{}',
    rate_limit    int         NOT NULL DEFAULT 0,
    quiet_hours   jsonb       NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    version       int         NOT NULL
);
