-- +goose Up
-- The log is append-only: no statement may change or delete a stored event, with one exception —
-- erasing a deleted user's personal data (projections/erasure.go), which sets herald.erase for
-- its own transaction. ARCHITECTURE.md, "Erasure", says why Herald rewrites instead of
-- crypto-shredding.
-- +goose StatementBegin
CREATE FUNCTION events_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('herald.erase', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION 'events are immutable: % of event % refused', TG_OP, OLD.event_id
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'only the erasure of a deleted user rewrites stored events';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER events_immutable BEFORE UPDATE OR DELETE ON events FOR EACH ROW EXECUTE FUNCTION events_immutable();

-- Deletions whose erasure is pending: a user.deleted still on its user stream. Tiny, and only
-- user.deleted rows ever enter it.
CREATE INDEX events_pending_erasure_idx ON events (global_position)
    WHERE type = 'user.deleted' AND stream_id LIKE 'user-%';

-- +goose Down
DROP INDEX events_pending_erasure_idx;
DROP TRIGGER events_immutable ON events;
DROP FUNCTION events_immutable();
