-- The client-side request schedule for HostPMS's rate limit, shared by every process
-- (Dagster runs of several properties, backfills) that uses the same OAuth client.
-- One row per (client, endpoint): the earliest moment the next request may be sent.
-- A caller claims a slot with one atomic upsert that moves next_allowed_at on by the
-- spacing, so requests from all processes together stay evenly spaced.
CREATE TABLE rate_limit_slots (
    client_id        text NOT NULL,
    endpoint         text NOT NULL,
    next_allowed_at  timestamptz NOT NULL,
    PRIMARY KEY (client_id, endpoint)
);
