-- Properties connected with `hostpms connect` (docs/operations.md). The properties a
-- deployment syncs are HOSTPMS_PROPERTY_IDS together with the rows here that are
-- connected; a row with disconnected_at set takes the property out of both (no request
-- is sent for it again until it is connected anew). Secrets are never stored here.
CREATE TABLE properties (
    property_id         text COLLATE "C" PRIMARY KEY,
    client_id           text,                   -- which OAuth client (not a secret)
    connected_at        timestamptz NOT NULL DEFAULT now(),
    disconnected_at     timestamptz,
    history_from        timestamptz,            -- the first pass reads from here (null: everything)
    webhook_url         text,
    subscription_id     text,
    subscription_state  text NOT NULL DEFAULT 'none'
        CHECK (subscription_state IN ('none', 'active', 'unsubscribed', 'failed')),
    purged_at           timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- A collection's first pass (no checkpoint yet) read every record updated since read_from
-- (null: everything HostPMS has): once it is loaded, the month partitions it covered are
-- reported materialized, so the UI's partition status matches what is in PostgreSQL.
CREATE TABLE history_passes (
    property_id   text COLLATE "C" NOT NULL,
    collection    text NOT NULL,
    read_from     timestamptz,
    completed_at  timestamptz NOT NULL DEFAULT now(),
    reported_at   timestamptz,
    PRIMARY KEY (property_id, collection)
);

-- The receiver's answers, counted per property, hour and outcome (accepted, duplicate,
-- bad_signature, unknown_property...), for `hostpms status`. Rows older than 8 days are
-- deleted by the receiver itself.
CREATE TABLE webhook_outcomes (
    property_id  text COLLATE "C" NOT NULL,
    hour         timestamptz NOT NULL,
    outcome      text NOT NULL,
    deliveries   bigint NOT NULL CHECK (deliveries >= 0),
    PRIMARY KEY (property_id, hour, outcome)
);

-- A property's data purged by `hostpms disconnect --purge` is audited like an erasure.
ALTER TABLE gdpr_audit_log DROP CONSTRAINT gdpr_audit_log_action_check;
ALTER TABLE gdpr_audit_log ADD CONSTRAINT gdpr_audit_log_action_check CHECK (
    action IN ('erasure', 'export', 'suppression_match', 'report', 'retention', 'property_purge')
);
