-- +goose Up
-- Readers that follow a few event types (most projections) jump straight to the next event of
-- their types instead of scanning every row in between: store.ReadAfter probes this index once
-- per type for the first such event after the checkpoint and below the read horizon (an
-- index-only scan), then pages through the log from there as before. Without it, each of nine
-- projections scanned the whole log — a 1,000,000-event import meant nine million rows read
-- for one projection's million, and a rebuild of a projection that handles none of them took
-- as long as a full scan.
CREATE INDEX events_type_position_idx ON events (type, transaction_id, global_position);

-- +goose Down
DROP INDEX events_type_position_idx;
