-- Rejected records and the Parquet outbox serve every entity, not bookings alone.
-- The entities' own tables are created from their specs (warehouse/tables.py).
ALTER TABLE rejected_records ADD COLUMN collection text NOT NULL DEFAULT 'reservations';
ALTER TABLE rejected_records ALTER COLUMN collection DROP DEFAULT;
CREATE INDEX rejected_records_collection ON rejected_records (collection, hotel_id);

-- dataset: the Parquet dataset (an entity's table name) whose day is queued.
ALTER TABLE parquet_outbox ADD COLUMN dataset text NOT NULL DEFAULT 'bookings';
ALTER TABLE parquet_outbox ALTER COLUMN dataset DROP DEFAULT;
ALTER TABLE parquet_outbox DROP CONSTRAINT parquet_outbox_day_writer;
ALTER TABLE parquet_outbox ADD CONSTRAINT parquet_outbox_dataset_day_writer
    UNIQUE NULLS NOT DISTINCT (dataset, day, queued_by);
