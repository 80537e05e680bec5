"""dlt loading the same HostPMS endpoints into PostgreSQL, for ``bench_sync`` to compare.

Runs with its own virtualenv (``benchmarks/.venv-dlt``, made by ``bench_sync`` on first
use), so it imports nothing from the project. Each collection is a resource with an
incremental ``updated_at`` cursor (sent as ``updated_since``) and ``merge`` on its id;
nested objects become columns as dlt normalises them.

    benchmarks/.venv-dlt/bin/python benchmarks/dlt_loader.py --base-url URL --database-url URL \\
        --pipelines-dir DIR --format parquet|insert_values [--entities all]
"""

from __future__ import annotations

import argparse
import os

ID_FIELD = {
    "reservations": "reservation_id",
    "guests": "guest_id",
    "rooms": "room_id",
    "payments": "payment_id",
}
EPOCH = "1970-01-01T00:00:00Z"


def hostpms_source(
    dlt, requests, base_url, client_id, client_secret, properties, collections, limit
):
    token = requests.post(
        f"{base_url}/oauth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        },
    )
    token.raise_for_status()
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

    def resource(collection: str):
        @dlt.resource(name=collection, primary_key=ID_FIELD[collection], write_disposition="merge")
        # dlt reads the incremental cursor from the default (its documented way).
        def pages(updated_at=dlt.sources.incremental("updated_at", initial_value=EPOCH)):  # noqa: B008
            for property_id in properties:
                params = {"limit": limit, "updated_since": updated_at.start_value}
                while True:
                    response = requests.get(
                        f"{base_url}/properties/{property_id}/{collection}",
                        params=params,
                        headers=headers,
                    )
                    response.raise_for_status()
                    page = response.json()
                    if page["data"]:
                        yield page["data"]
                    if page["next_cursor"] is None:
                        break
                    params["cursor"] = page["next_cursor"]

        return pages

    return [resource(collection) for collection in collections]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--pipelines-dir", required=True)
    parser.add_argument("--format", choices=("parquet", "insert_values", "csv"), required=True)
    parser.add_argument("--client-id", default="bench-client")
    parser.add_argument("--client-secret", default="bench-secret")
    parser.add_argument("--properties", default="PT-LIS-001")
    parser.add_argument("--entities", choices=("reservations", "all"), default="reservations")
    parser.add_argument("--limit", type=int, default=500)
    args = parser.parse_args()
    # dlt's fastest file handling: no gzip of the intermediate files, no telemetry.
    os.environ.setdefault("NORMALIZE__DATA_WRITER__DISABLE_COMPRESSION", "true")
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt
    from dlt.sources.helpers import requests

    collections = list(ID_FIELD) if args.entities == "all" else ["reservations"]
    pipeline = dlt.pipeline(
        pipeline_name="hostpms_bench",
        destination=dlt.destinations.postgres(credentials=args.database_url),
        dataset_name="dlt_hostpms",
        pipelines_dir=args.pipelines_dir,
    )
    source = hostpms_source(
        dlt,
        requests,
        args.base_url,
        args.client_id,
        args.client_secret,
        args.properties.split(","),
        collections,
        args.limit,
    )
    info = pipeline.run(source, loader_file_format=args.format)
    print(info)


if __name__ == "__main__":
    main()
