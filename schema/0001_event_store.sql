-- +goose Up
-- The event store: the only source of truth. Every read model is rebuilt from this table.
-- Readers never tail global_position alone: rows commit out of order. They read
-- (transaction_id, global_position) > checkpoint AND transaction_id < pg_snapshot_xmin(...)
-- ordered by the primary key, so no committed row is ever skipped (ARCHITECTURE.md, "Reading the log").
CREATE TABLE events (
    global_position bigint      GENERATED ALWAYS AS IDENTITY,
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id        uuid        NOT NULL,
    stream_id       text        NOT NULL,
    stream_version  int         NOT NULL CHECK (stream_version > 0),
    type            text        NOT NULL,
    schema_version  smallint    NOT NULL DEFAULT 1,
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}',
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    -- Column order matters: the gap-safe reader's range scan is on (transaction_id, global_position).
    CONSTRAINT events_pkey PRIMARY KEY (transaction_id, global_position),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
);
CREATE INDEX events_global_position_idx ON events (global_position);

-- One doorbell per writing statement, delivered at commit; the payload names the schema so
-- several Herald installations (or test schemas) can share one database.
-- +goose StatementBegin
CREATE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('herald_events', TG_TABLE_SCHEMA);
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER events_notify AFTER INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION events_notify();

-- Where each consumer (the relay, every projection) has got to in the log, in gap-safe coordinates.
CREATE TABLE checkpoints (
    name          text        PRIMARY KEY,
    last_tx       xid8        NOT NULL DEFAULT '0',
    last_position bigint      NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The relay's view of Redis: the epoch it last wrote there. A different or missing epoch in Redis
-- means Redis lost its data and the relay must republish what consumers have not applied.
CREATE TABLE relay_state (
    name       text        PRIMARY KEY,
    epoch      text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Events a projection could not apply after bounded retries, kept for an operator.
CREATE TABLE parked_events (
    projection      text        NOT NULL,
    event_id        uuid        NOT NULL,
    global_position bigint      NOT NULL,
    type            text        NOT NULL,
    reason          text        NOT NULL,
    attempts        int         NOT NULL,
    parked_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, event_id)
);

-- +goose Down
DROP TABLE parked_events;
DROP TABLE relay_state;
DROP TABLE checkpoints;
DROP TABLE events;
DROP FUNCTION events_notify();
