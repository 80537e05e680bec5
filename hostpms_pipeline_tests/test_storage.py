"""The raw landing store keeps one contract on a local folder and on S3 (moto over HTTP)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from hostpms_pipeline.lake import storage
from hostpms_pipeline.lake.storage import (
    KMS_KEY_ID_VARIABLE,
    LocalObjectStore,
    ObjectNotFoundError,
    ObjectStore,
    S3ObjectStore,
    StorageError,
    open_store,
)
from hostpms_pipeline_tests.fixtures.s3 import TEST_REGION, s3_client

# Keys whose lexicographic order differs from a folder walk's order.
TRICKY_KEYS = ["p/a/b.json", "p/a-b.json", "p/a.json", "p/b.json", "q/x.json"]


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return open_store(str(tmp_path / "raw"))
    bucket_url = request.getfixturevalue("s3_bucket_url")
    return open_store(f"{bucket_url}/raw")


def put_all(store: ObjectStore, keys: list[str]) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: store.put(key, key.encode()), keys))


def test_put_then_get_and_get_location_return_the_bytes(store: ObjectStore) -> None:
    location = store.put("hostpms/PT-LIS-001/page.json", b'{"a": 1}')

    assert location == store.location("hostpms/PT-LIS-001/page.json")
    assert store.get("hostpms/PT-LIS-001/page.json") == b'{"a": 1}'
    assert store.get_location(location) == b'{"a": 1}'


def test_put_replaces_an_existing_object(store: ObjectStore) -> None:
    store.put("k.json", b"old")
    store.put("k.json", b"new")

    assert store.get("k.json") == b"new"
    assert [info.key for info in store.list("")] == ["k.json"]


def test_list_is_in_key_order_filtered_by_prefix_and_resumes_after(store: ObjectStore) -> None:
    put_all(store, list(reversed(TRICKY_KEYS)))

    assert [info.key for info in store.list("")] == sorted(TRICKY_KEYS)
    assert [info.key for info in store.list("p/a")] == ["p/a-b.json", "p/a.json", "p/a/b.json"]
    assert [info.key for info in store.list("p/", start_after="p/a.json")] == [
        "p/a/b.json",
        "p/b.json",
    ]
    assert list(store.list("nothing/")) == []


def test_list_reports_size_and_utc_modification_time(store: ObjectStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    store.put("sized.json", b"12345")

    (info,) = store.list("sized")

    assert info.size == 5
    assert info.last_modified.utcoffset() == timedelta(0)
    assert before <= info.last_modified <= datetime.now(UTC) + timedelta(seconds=5)


def test_list_walks_every_page_beyond_a_thousand_keys(store: ObjectStore) -> None:
    keys = [f"many/{index:05d}.json" for index in range(1_010)]
    put_all(store, keys)

    assert [info.key for info in store.list("many/")] == keys
    assert [info.key for info in store.list("many/", start_after="many/00009.json")] == keys[10:]


def test_exists_tells_present_from_missing(store: ObjectStore) -> None:
    store.put("here.json", b"x")

    assert store.exists("here.json")
    assert not store.exists("missing.json")


def test_missing_object_raises_not_found_carrying_the_key(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFoundError) as raised:
        store.get("hostpms/missing.json")

    assert raised.value.key == "hostpms/missing.json"
    assert isinstance(raised.value, StorageError)


@pytest.mark.parametrize(
    "key", ["", "/absolute.json", "../escape.json", "a//b.json", "a/./b.json", ".hidden"]
)
def test_keys_that_could_escape_or_collide_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(StorageError):
        store.put(key, b"x")


def test_locations_outside_the_store_are_refused(store: ObjectStore, tmp_path: Path) -> None:
    foreign_file = LocalObjectStore(tmp_path / "elsewhere").put("k.json", b"x")
    outside = [
        foreign_file,
        f"{store.url}/../elsewhere/k.json",
        "s3://other-bucket/raw/k.json",
    ]

    for location in outside:
        with pytest.raises(StorageError):
            store.get_location(location)


def test_open_store_understands_paths_file_urls_and_s3_urls(tmp_path: Path) -> None:
    assert open_store(str(tmp_path)).url == str(tmp_path)
    assert open_store(tmp_path.as_uri()).url == str(tmp_path)
    s3_store = open_store("s3://landing-bucket/raw/hostpms/")
    assert isinstance(s3_store, S3ObjectStore)
    assert (s3_store.bucket, s3_store.prefix, s3_store.url) == (
        "landing-bucket",
        "raw/hostpms",
        "s3://landing-bucket/raw/hostpms",
    )
    with pytest.raises(StorageError):
        open_store("ftp://host/raw")


def test_local_get_location_accepts_file_urls(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    location = store.put("a b/c.json", b"x")

    assert store.get_location(Path(location).as_uri()) == b"x"


def io_error(*_: object) -> None:
    """Stands in for a system call that fails as a dying disk does."""
    raise OSError(5, "Input/output error")


@pytest.mark.parametrize(
    ("module", "call", "left"),
    [
        (os, "fsync", b"old"),  # before the rename: the old object stays
        (storage, "_fsync_directory", b"new"),  # after it: in place, but not known durable
    ],
    ids=["file fsync", "folder fsync"],
)
def test_local_put_fails_when_an_fsync_fails_and_the_next_put_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: object, call: str, left: bytes
) -> None:
    store = LocalObjectStore(tmp_path)
    store.put("hostpms/P/k.json", b"old")

    monkeypatch.setattr(module, call, io_error)
    with pytest.raises(StorageError) as raised:
        store.put("hostpms/P/k.json", b"new")

    assert raised.value.key == "hostpms/P/k.json"
    assert store.get("hostpms/P/k.json") == left
    assert sorted(path.name for path in (tmp_path / "hostpms/P").iterdir()) == ["k.json"]
    monkeypatch.undo()
    store.put("hostpms/P/c.json", b"c")  # the next put writes and syncs the folder again
    assert store.get("hostpms/P/c.json") == b"c"


def test_local_put_recreates_a_folder_removed_behind_its_back(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "raw")
    store.put("hostpms/P/webhooks/a.json", b"a")  # the store now knows the folder exists
    shutil.rmtree(tmp_path / "raw" / "hostpms")

    store.put("hostpms/P/webhooks/b.json", b"b")

    assert store.get("hostpms/P/webhooks/b.json") == b"b"


def test_local_put_returns_only_after_a_folder_fsync_that_began_after_its_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Concurrent puts into one folder share folder fsyncs; none may return on an fsync
    # that was already running when its file was renamed into the folder.
    store = LocalObjectStore(tmp_path)
    log: list[tuple[str, str]] = []
    real_replace, real_fsync_directory = os.replace, storage._fsync_directory

    def replace(source: str, target: str) -> None:
        real_replace(source, target)
        log.append(("renamed", Path(target).name))

    def fsync_directory(folder: str) -> None:
        log.append(("fsync began", folder))
        time.sleep(0.002)  # long enough for other renames to land meanwhile
        real_fsync_directory(folder)
        log.append(("fsync ended", folder))

    def put(index: int) -> None:
        store.put(f"hostpms/P/webhooks/{index:03d}.json", b"x")
        log.append(("returned", f"{index:03d}.json"))

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(storage, "_fsync_directory", fsync_directory)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, range(60)))

    folder = str(tmp_path / "hostpms/P/webhooks")
    for name in (f"{index:03d}.json" for index in range(60)):
        renamed, returned = log.index(("renamed", name)), log.index(("returned", name))
        began = [
            i for i, entry in enumerate(log) if entry == ("fsync began", folder) and i > renamed
        ]
        ended = {
            i for i, entry in enumerate(log) if entry == ("fsync ended", folder) and i < returned
        }
        assert any(any(end > start for end in ended) for start in began), name


def test_local_reader_never_sees_a_partial_object(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    versions = [b"a" * 2_000_000, b"b" * 2_000_000]
    store.put("big.bin", versions[0])
    seen: set[bytes] = set()
    done = threading.Event()

    def read_until_done() -> None:
        while not done.is_set():
            seen.add(store.get("big.bin"))

    reader = threading.Thread(target=read_until_done)
    reader.start()
    for round_number in range(40):
        store.put("big.bin", versions[round_number % 2])
    done.set()
    reader.join()

    assert seen <= set(versions)
    assert [info.key for info in store.list("")] == ["big.bin"]


def test_s3_put_requests_sse_s3_encryption(s3_bucket_url: str, moto_endpoint_url: str) -> None:
    store = open_store(s3_bucket_url)
    store.put("guest.json", b"{}")

    head = s3_client(moto_endpoint_url).head_object(
        Bucket=s3_bucket_url.removeprefix("s3://"), Key="guest.json"
    )

    assert head["ServerSideEncryption"] == "AES256"


def test_s3_put_uses_the_configured_kms_key(
    s3_bucket_url: str, moto_endpoint_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kms = boto3.client("kms", endpoint_url=moto_endpoint_url, region_name=TEST_REGION)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    monkeypatch.setenv(KMS_KEY_ID_VARIABLE, key_id)
    open_store(s3_bucket_url).put("guest.json", b"{}")

    head = s3_client(moto_endpoint_url).head_object(
        Bucket=s3_bucket_url.removeprefix("s3://"), Key="guest.json"
    )

    assert head["ServerSideEncryption"] == "aws:kms"
    assert key_id in head["SSEKMSKeyId"]


def test_s3_store_under_a_prefix_sees_only_its_own_keys(
    s3_bucket_url: str, moto_endpoint_url: str
) -> None:
    bucket = s3_bucket_url.removeprefix("s3://")
    s3_client(moto_endpoint_url).put_object(Bucket=bucket, Key="rawer/outside.json", Body=b"x")
    store = open_store(f"{s3_bucket_url}/raw")
    store.put("inside.json", b"x")

    assert [info.key for info in store.list("")] == ["inside.json"]
    assert store.location("inside.json") == f"{s3_bucket_url}/raw/inside.json"


def test_unreachable_s3_endpoint_raises_storage_error_with_the_key(
    s3_bucket_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    store = open_store(s3_bucket_url)

    with pytest.raises(StorageError) as raised:
        store.put("hostpms/page.json", b"{}")

    assert raised.value.key == "hostpms/page.json"
    assert not isinstance(raised.value, ObjectNotFoundError)
