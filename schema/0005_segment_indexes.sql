-- +goose Up
-- Segments (projections/segment) count and list users by rule. The country of each user is the
-- ISO 3166-1 alpha-2 region of the phone, computed by the users projection on user.created
-- ('' when the number has no single region). Rows that existed before this migration keep ''
-- until `herald rebuild users` replays them.
ALTER TABLE users ADD COLUMN country text NOT NULL DEFAULT '';

-- One btree per field a typical rule filters on; a rule's leaves combine them with BitmapAnd.
-- created_at and country never change after creation, so these cost nothing on updates. There is
-- deliberately no index on last_inbound_at: every inbound message updates it, and an index on it
-- would turn those HOT updates into full updates of every index (the GIN on attributes included).
-- users_consent_idx (0002) serves consent; users_attributes_idx (GIN, jsonb_path_ops) serves
-- attribute eq, in and array contains, which compile to `u.attributes @> …`.
CREATE INDEX users_country_idx ON users (country);
CREATE INDEX users_locale_idx ON users (locale);
CREATE INDEX users_created_at_idx ON users (created_at);

-- topic leaves compile to EXISTS (… s.topic = $n AND s.subscribed AND s.phone = u.phone): with
-- phone in the index the subscribers of a topic come from an index-only scan. It replaces the
-- (topic) partial index, which it covers.
CREATE INDEX subscriptions_topic_phone_idx ON subscriptions (topic, phone) WHERE subscribed;
DROP INDEX subscriptions_topic_idx;

-- +goose Down
CREATE INDEX subscriptions_topic_idx ON subscriptions (topic) WHERE subscribed;
DROP INDEX subscriptions_topic_phone_idx;
DROP INDEX users_created_at_idx;
DROP INDEX users_locale_idx;
DROP INDEX users_country_idx;
ALTER TABLE users DROP COLUMN country;
