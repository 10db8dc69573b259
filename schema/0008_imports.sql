-- +goose Up
-- Imports. imports, import_counts and import_issues are the imports projection (the
-- data-quality report, rebuildable from the import streams); import_jobs and import_uploads are
-- not projections: they hold an upload received by the API until an import has read it, so an
-- import outlives the API process that received it.

CREATE TABLE imports (
    id                text        PRIMARY KEY,
    kind              text        NOT NULL,
    status            text        NOT NULL CHECK (status IN ('processing', 'completed', 'failed')),
    format            text        NOT NULL,
    mode              text        NOT NULL,
    region            text        NOT NULL DEFAULT '',
    source            text        NOT NULL DEFAULT '',
    error             text        NOT NULL DEFAULT '',
    rows_read         int         NOT NULL DEFAULT 0,
    blank_rows        int         NOT NULL DEFAULT 0,
    accepted          int         NOT NULL DEFAULT 0,
    rejected          int         NOT NULL DEFAULT 0,
    created           int         NOT NULL DEFAULT 0,
    updated           int         NOT NULL DEFAULT 0,
    unchanged         int         NOT NULL DEFAULT 0,
    merged            int         NOT NULL DEFAULT 0,
    warnings          int         NOT NULL DEFAULT 0,
    consent_conflicts int         NOT NULL DEFAULT 0,
    batches           int         NOT NULL DEFAULT 0,
    last_row          int         NOT NULL DEFAULT 0,
    columns           jsonb,
    duration_ms       bigint,
    started_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    finished_at       timestamptz,
    version           int         NOT NULL
);
CREATE INDEX imports_started_idx ON imports (started_at DESC, id);

-- Counts by rejection reason, warning code and country.
CREATE TABLE import_counts (
    import_id text NOT NULL,
    dim       text NOT NULL CHECK (dim IN ('rejected', 'warning', 'country')),
    key       text NOT NULL,
    n         int  NOT NULL,
    PRIMARY KEY (import_id, dim, key)
);

-- Every rejected row, warning and merged duplicate (seq orders several issues of one row).
CREATE TABLE import_issues (
    import_id text NOT NULL,
    kind      text NOT NULL CHECK (kind IN ('rejection', 'warning', 'merge')),
    row       int  NOT NULL,
    seq       int  NOT NULL,
    code      text NOT NULL,
    value     text NOT NULL DEFAULT '',
    detail    text NOT NULL DEFAULT '',
    into_row  int,
    PRIMARY KEY (import_id, kind, row, seq)
);

CREATE TABLE import_jobs (
    import_id     uuid        PRIMARY KEY,
    spec          jsonb       NOT NULL,
    received      boolean     NOT NULL DEFAULT false, -- every chunk of the upload is stored
    bytes         bigint      NOT NULL DEFAULT 0,
    claimed_until timestamptz,                        -- a worker holds it until then (heartbeat)
    attempts      int         NOT NULL DEFAULT 0,
    done          boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX import_jobs_pending_idx ON import_jobs (created_at) WHERE received AND NOT done;

CREATE TABLE import_uploads (
    import_id uuid  NOT NULL,
    seq       int   NOT NULL,
    data      bytea NOT NULL,
    PRIMARY KEY (import_id, seq)
);

-- +goose Down
DROP TABLE import_uploads;
DROP TABLE import_jobs;
DROP TABLE import_issues;
DROP TABLE import_counts;
DROP TABLE imports;
