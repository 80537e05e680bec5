-- Each `hostpms sync` of a property, succeeded or failed. The command runs no Dagster run:
-- the hostpms_cli_syncs sensor shows what it loaded as materializations and alerts on its
-- failures (defs/cli_syncs.py), after the rows' id as its cursor; `hostpms status` counts
-- its failures with the Dagster runs'. Counts and the one-line failure only, never guest data.
CREATE TABLE sync_reports (
    id           bigserial PRIMARY KEY,
    property_id  text COLLATE "C" NOT NULL,
    finished_at  timestamptz NOT NULL DEFAULT now(),
    succeeded    boolean NOT NULL,
    problem      text,
    -- per collection that loaded files: records_landed, rows_mapped, rejected, inserted,
    -- versions_bumped
    loaded       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX sync_reports_by_property ON sync_reports (property_id, finished_at DESC);
