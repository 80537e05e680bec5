#!/bin/sh
# The hourly poll that the EventBridge rule starts (TR-3's hostpms-polling): every
# connected property, then one JSON line that CloudWatch metric filters turn into the
# EtlDurationSeconds, PollingFailures and PollingSuccesses metrics (infra/, monitoring).
started=$(date +%s)
hostpms sync
status=$?
failed=0
[ "$status" -eq 0 ] || failed=1
printf '{"hostpms_poll": {"duration_seconds": %d, "failed": %d}}\n' \
    "$(($(date +%s) - started))" "$failed"
exit "$status"
