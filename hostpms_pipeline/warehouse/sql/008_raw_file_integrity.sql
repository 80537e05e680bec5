-- Raw files are checked when landed and again when read (hostpms_pipeline/lake/raw_integrity.py).
-- A polling page's size and SHA-256 as landed, and the updated_at span of its records (the
-- window to fetch again if the file is damaged later). Files landed before this migration,
-- and webhook drops found by the sensor, have no row: they are checked by parsing.
CREATE TABLE raw_file_digests (
    location        text PRIMARY KEY,
    size_bytes      bigint NOT NULL CHECK (size_bytes >= 0),
    sha256          text NOT NULL,
    min_updated_at  timestamptz,
    max_updated_at  timestamptz
);

-- A raw file that could not be read: set aside (marked processed in raw_files, so it no
-- longer holds back the files after it), with its location and reason, until
-- `hostpms refetch PROPERTY_ID` has fetched its window again.
CREATE TABLE raw_quarantine (
    location        text PRIMARY KEY,
    property_id     text NOT NULL,
    reason          text NOT NULL,
    window_start    timestamptz,
    window_end      timestamptz,
    quarantined_at  timestamptz NOT NULL DEFAULT now(),
    refetched_at    timestamptz
);

CREATE INDEX raw_quarantine_open ON raw_quarantine (property_id) WHERE refetched_at IS NULL;
