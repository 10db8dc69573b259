-- +goose Up
-- Read models. Every table here is a projection of the event log: it can be dropped and rebuilt
-- with `herald rebuild`. Rules that keep rebuild byte-identical to the live path:
--   * no foreign keys between read models (rebuild swaps tables one by one; integrity comes from events);
--   * no serial/identity columns and no now() defaults that projections rely on: every value,
--     timestamps included, is derived from the events (recorded_at or the payload).

CREATE TABLE users (
    phone           text        PRIMARY KEY CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'), -- E.164
    attributes      jsonb       NOT NULL DEFAULT '{}',
    consent         text        NOT NULL DEFAULT 'OPT_OUT' CHECK (consent IN ('OPT_IN', 'OPT_OUT')),
    consent_source  text        NOT NULL DEFAULT '',
    locale          text        NOT NULL DEFAULT '',
    timezone        text        NOT NULL DEFAULT '',
    last_inbound_at timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    version         int         NOT NULL -- stream version of the last applied event (ETag)
);
CREATE INDEX users_consent_idx ON users (consent);
CREATE INDEX users_attributes_idx ON users USING gin (attributes jsonb_path_ops);

CREATE TABLE subscriptions (
    phone      text        NOT NULL,
    topic      text        NOT NULL,
    subscribed boolean     NOT NULL,
    source     text        NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (phone, topic)
);
CREATE INDEX subscriptions_topic_idx ON subscriptions (topic) WHERE subscribed;

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
    body        text        NOT NULL,           -- with {placeholders}
    content_sid text        NOT NULL DEFAULT '', -- approved WhatsApp template (HX...), optional
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
    schedule      jsonb       NOT NULL DEFAULT '{}', -- {"at": …} or {"cron": …, "timezone": …}
    rate_limit    int         NOT NULL DEFAULT 0,    -- messages per second, 0 = only the sender limit
    quiet_hours   jsonb       NOT NULL DEFAULT '{}', -- {"start": "21:00", "end": "08:00", "timezone": …}
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    version       int         NOT NULL
);

CREATE TABLE messages (
    id            uuid        PRIMARY KEY,
    campaign_id   text,
    phone         text        NOT NULL,
    state         text        NOT NULL,
    status        text        NOT NULL DEFAULT '', -- derived provider status (order-independent)
    provider_sid  text,
    error_code    int,
    reason        text        NOT NULL DEFAULT '',
    attempts      int         NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    version       int         NOT NULL
);
CREATE INDEX messages_campaign_idx ON messages (campaign_id, state);
CREATE INDEX messages_phone_idx ON messages (phone);
CREATE UNIQUE INDEX messages_provider_sid_idx ON messages (provider_sid) WHERE provider_sid IS NOT NULL;

CREATE TABLE events_inbound (
    event_id      uuid        PRIMARY KEY,
    message_sid   text        NOT NULL UNIQUE,
    phone         text        NOT NULL,
    body          text        NOT NULL DEFAULT '',
    command       text        NOT NULL DEFAULT '',
    topic         text        NOT NULL DEFAULT '',
    raw           jsonb       NOT NULL, -- the form exactly as Twilio posted it
    normalized    jsonb       NOT NULL,
    received_at   timestamptz NOT NULL
);
CREATE INDEX events_inbound_phone_idx ON events_inbound (phone, received_at DESC);

CREATE TABLE delivery_receipts (
    event_id      uuid        PRIMARY KEY,
    message_sid   text        NOT NULL,
    status        text        NOT NULL,
    error_code    int,
    raw           jsonb       NOT NULL,
    normalized    jsonb       NOT NULL,
    received_at   timestamptz NOT NULL
);
CREATE INDEX delivery_receipts_sid_idx ON delivery_receipts (message_sid, received_at);

-- +goose Down
DROP TABLE delivery_receipts;
DROP TABLE events_inbound;
DROP TABLE messages;
DROP TABLE campaigns;
DROP TABLE templates;
DROP TABLE segments;
DROP TABLE subscriptions;
DROP TABLE users;
