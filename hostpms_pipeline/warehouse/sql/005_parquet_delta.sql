-- The Parquet export can merge the rows a run wrote into the day files instead of
-- reading those days back from PostgreSQL, when it knows nobody else changed them.
--
-- queued_by: the run (an opaque token) that queued the day; null for a writer that
-- keeps no copy of its rows. A day queued by anyone but the exporting run is
-- rebuilt from PostgreSQL.
ALTER TABLE parquet_outbox ADD COLUMN queued_by text;
ALTER TABLE parquet_outbox DROP CONSTRAINT parquet_outbox_day;
ALTER TABLE parquet_outbox ADD CONSTRAINT parquet_outbox_day_writer
    UNIQUE NULLS NOT DISTINCT (day, queued_by);

