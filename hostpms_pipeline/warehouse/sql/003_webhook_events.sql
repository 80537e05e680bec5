-- Webhook idempotency: one row per delivered HostPMS event, so each event lands once.
-- A delivery first claims its key (state 'claimed', with a lease), lands the event in
-- the raw store, then marks the key 'landed'. A failed landing deletes its claim; a
-- claim whose lease ran out (the receiver died mid-way) may be taken over by a
-- redelivery. Rows older than 7 days (HostPMS stops retrying after 24 hours) are purged
-- by received_at.
CREATE TABLE webhook_events (
    idempotency_key  text COLLATE "C" PRIMARY KEY,  -- hostpms:{property_id}:{event_id}
    property_id      text NOT NULL,
    event_type       text NOT NULL,
    state            text NOT NULL CHECK (state IN ('claimed', 'landed')),
    claim_token      uuid NOT NULL,
    claimed_until    timestamptz NOT NULL,
    received_at      timestamptz NOT NULL,
    location         text,  -- set once landed
    landed_at        timestamptz
);

CREATE INDEX webhook_events_received_at ON webhook_events (received_at);
