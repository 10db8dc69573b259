-- +goose Up
-- Indexes behind the API's message reports (handlers/api: messages.go, stats.go, inbox.go).

-- A campaign's messages page by id (keyset), whatever their state.
CREATE INDEX messages_campaign_id_idx ON messages (campaign_id, id);

-- Counts by state come from an index-only scan, and the campaign's throughput (messages
-- accepted in the last minute) from a range of it: an accepted message's updated_at is when
-- it was accepted (status callbacks do not touch the row). It covers messages_campaign_idx
-- (campaign_id, state), which it replaces. Almost every update changes state, which was
-- already indexed, so updated_at in the key costs no HOT update that was not lost anyway.
CREATE INDEX messages_campaign_state_idx ON messages (campaign_id, state, updated_at);
DROP INDEX messages_campaign_idx;

-- /v1/stats?from=&to= reads the messages queued in a time range; queued_at never changes, so
-- the index is written once per message, at its right edge.
CREATE INDEX messages_queued_at_idx ON messages (queued_at);

-- Throughput across campaigns: messages accepted in the last minute.
CREATE INDEX messages_accepted_at_idx ON messages (updated_at) WHERE state = 'accepted';

-- Opt-outs during and after a campaign: the opt-out events since its first send, each then
-- probing messages_phone_idx for the campaign. Opt-outs are a sliver of the log, so the
-- partial index is small and most appends only evaluate its predicate.
CREATE INDEX events_opt_out_idx ON events (recorded_at)
    WHERE type = 'user.consent_changed' AND data->>'consent' = 'OPT_OUT';

-- The inbox, newest first, keyset-paged by (received_at, event_id) without a phone.
CREATE INDEX events_inbound_received_idx ON events_inbound (received_at DESC, event_id DESC);

-- +goose Down
DROP INDEX events_inbound_received_idx;
DROP INDEX events_opt_out_idx;
DROP INDEX messages_accepted_at_idx;
DROP INDEX messages_queued_at_idx;
CREATE INDEX messages_campaign_idx ON messages (campaign_id, state);
DROP INDEX messages_campaign_state_idx;
DROP INDEX messages_campaign_id_idx;
