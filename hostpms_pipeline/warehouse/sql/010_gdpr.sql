-- GDPR (docs/gdpr.md): the suppression list, erasure requests, the erasure epoch that loads
-- check before they commit, and the append-only audit log. No clear identifier is stored
-- anywhere here: persons are keyed hashes (HMAC-SHA256 of the normalised identifier).

CREATE TABLE gdpr_erasure_requests (
    id            uuid PRIMARY KEY,
    person_hash   text NOT NULL UNIQUE,  -- hash of the identifier the request named
    state         text NOT NULL CHECK (state IN ('suppressed', 'raw_redacted', 'postgres_erased', 'done')),
    requested_by  text NOT NULL,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    counts        jsonb NOT NULL DEFAULT '{}'
);

-- Every later record carrying one of these identifiers is redacted before it lands.
CREATE TABLE gdpr_suppression (
    identifier_hash  text PRIMARY KEY,
    kind             text NOT NULL CHECK (kind IN ('email', 'nif', 'phone', 'guest_id')),
    request_id       uuid NOT NULL REFERENCES gdpr_erasure_requests (id),
    added_at         timestamptz NOT NULL DEFAULT now(),
    seq              bigserial NOT NULL
);
CREATE INDEX gdpr_suppression_request ON gdpr_suppression (request_id);

-- Bumped by an erasure once the raw store is redacted: a load whose raw files were read
-- under an older epoch does not commit (its files stay pending and are read again).
CREATE TABLE gdpr_epoch (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    epoch      bigint NOT NULL
);
INSERT INTO gdpr_epoch VALUES (true, 0);

CREATE TABLE gdpr_audit_log (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor        text NOT NULL,          -- OS user, or dagster:{run id}
    action       text NOT NULL CHECK (action IN ('erasure', 'export', 'suppression_match', 'report', 'retention')),
    person_hash  text,                   -- keyed hash only; null for retention
    stores       text[] NOT NULL DEFAULT '{}',
    counts       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX gdpr_audit_log_person ON gdpr_audit_log (person_hash, at);

CREATE FUNCTION gdpr_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'gdpr_audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER gdpr_audit_log_no_update_or_delete
    BEFORE UPDATE OR DELETE ON gdpr_audit_log
    FOR EACH ROW EXECUTE FUNCTION gdpr_audit_log_append_only();
CREATE TRIGGER gdpr_audit_log_no_truncate
    BEFORE TRUNCATE ON gdpr_audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION gdpr_audit_log_append_only();
