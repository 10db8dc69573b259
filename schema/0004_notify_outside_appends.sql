-- +goose Up
-- The store now sends NOTIFY herald_events itself, after its append transactions commit.
-- A transaction that notifies holds a cluster-wide lock until its commit is flushed to disk,
-- so the statement trigger serialized every append commit (measured: group commit stopped
-- scaling past one committer). Listeners poll as a fallback, so rows written by other tools
-- (e.g. by hand) are still relayed, within the poll interval.
DROP TRIGGER events_notify ON events;
DROP FUNCTION events_notify();

-- +goose Down
-- +goose StatementBegin
CREATE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('herald_events', TG_TABLE_SCHEMA);
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER events_notify AFTER INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION events_notify();
