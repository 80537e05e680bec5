"""Asset keys, shared by the assets, their checks and the command line."""

from dagster import AssetKey

KEY_PREFIX = "hostpms"
RAW_RESERVATIONS = AssetKey([KEY_PREFIX, "raw_reservations"])
MAPPED_BOOKINGS = AssetKey([KEY_PREFIX, "mapped_bookings"])
DEDUPLICATED_BOOKINGS = AssetKey([KEY_PREFIX, "deduplicated_bookings"])
BOOKINGS = AssetKey([KEY_PREFIX, "bookings"])
BOOKINGS_PARQUET = AssetKey([KEY_PREFIX, "bookings_parquet"])
