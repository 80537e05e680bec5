-- Parquet day partitions whose rows changed in PostgreSQL and are not yet rewritten.
-- Filled in the same transaction as the upsert, emptied only in the transaction that
-- rewrote them, so a failed Parquet export is retried by the next run instead of
-- leaving the dataset behind PostgreSQL. A null day is the partition of bookings
-- without booked_at.
CREATE TABLE parquet_outbox (
    day date,
    CONSTRAINT parquet_outbox_day UNIQUE NULLS NOT DISTINCT (day)
);
