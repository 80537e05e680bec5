-- Initial layout. Applied by hostpms_pipeline.database.migrate with search_path set
-- to the configured schema, so names stay unqualified here.

-- One row per booking (contract section 5); columns follow booking_schema.BOOKING_SCHEMA.
CREATE TABLE bookings (
    id                  uuid PRIMARY KEY,
    -- The natural key compares bytes (COLLATE "C"): its index is the upsert's
    -- hottest path, and linguistic order means nothing for identifiers.
    external_id         text COLLATE "C" NOT NULL,
    source              text COLLATE "C" NOT NULL,
    hotel_id            text COLLATE "C" NOT NULL,
    guest_name          text,
    guest_email         text,
    guest_phone         text,
    room_number         text,
    room_type           text NOT NULL,
    room_type_original  text,
    check_in_date       date NOT NULL,
    check_out_date      date NOT NULL,
    booked_at           timestamptz,
    total_amount        numeric(12, 2) NOT NULL,
    -- text, not char(3): a malformed currency from HostPMS must reach the
    -- data-quality checks instead of failing the whole batch.
    currency            text,
    iva_amount          numeric(12, 2),
    tourist_tax_amount  numeric(12, 2),
    rate_plan           text NOT NULL,
    rate_plan_original  text,
    status              text NOT NULL,
    status_original     text,
    channel             text NOT NULL,
    channel_original    text,
    payment_method      text,
    lead_time           integer,
    length_of_stay      integer NOT NULL,
    source_updated_at   timestamptz NOT NULL,
    event_received_at   timestamptz,
    raw_location        text,
    state_hash          text NOT NULL,
    synced_at           timestamptz NOT NULL,
    version             integer NOT NULL CHECK (version >= 1),
    CONSTRAINT bookings_natural_key UNIQUE (source, external_id, hotel_id)
)
-- Room on each page for a newer version of its rows: an update that changes no
-- indexed column then stays on the page (HOT) and writes no index entries.
WITH (fillfactor = 90);

-- Deliberately few indexes: each one costs the bulk upsert about a second per
-- million rows. Rewriting Parquet partitions (booked_at days) scans the table.
CREATE INDEX bookings_hotel_check_in ON bookings (hotel_id, check_in_date);

-- Records that could not become bookings, with their reason (never silently dropped).
CREATE TABLE rejected_records (
    raw_location       text NOT NULL,
    record_index       integer NOT NULL,
    source             text NOT NULL,
    hotel_id           text,
    external_id        text,
    reason             text NOT NULL,
    detail             text,
    source_updated_at  timestamptz,
    rejected_at        timestamptz NOT NULL,
    -- Re-processing the same raw file must not duplicate its rejections.
    PRIMARY KEY (raw_location, record_index)
);

CREATE INDEX rejected_records_hotel_reason ON rejected_records (hotel_id, reason);

-- Where each property's incremental sync resumes.
CREATE TABLE sync_checkpoints (
    property_id    text NOT NULL,
    collection     text NOT NULL,
    updated_since  timestamptz,  -- null until the first pass has completed
    cursor         text,         -- set while a pagination pass is under way
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (property_id, collection)
);

-- Ledger of landed raw files, so the ETL reads only what is new.
CREATE TABLE raw_files (
    location      text PRIMARY KEY,
    property_id   text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('polling', 'webhook')),
    collection    text NOT NULL,
    record_count  integer NOT NULL CHECK (record_count >= 0),
    landed_at     timestamptz NOT NULL,
    processed_at  timestamptz
);

CREATE INDEX raw_files_pending ON raw_files (landed_at, location) WHERE processed_at IS NULL;
