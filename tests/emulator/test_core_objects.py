"""COS object operations through the real cos-python-sdk-v5 client."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from qcloud_cos import CosServiceError

from airflow_provider_tencent_ci.emulator import Emulator

from .conftest import BUCKET


def _body(resp: dict[str, Any]) -> bytes:
    return resp["Body"].get_raw_stream().read()


def test_put_get_head_delete_roundtrip(emu: Emulator, cos: Any) -> None:
    data = b"hello emulator" * 100
    put = cos.put_object(
        Bucket=BUCKET, Key="dir/a b+c.txt", Body=data, ContentType="text/plain", Metadata={"x-cos-meta-team": "ci"}
    )
    assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert put["x-cos-request-id"]

    got = cos.get_object(Bucket=BUCKET, Key="dir/a b+c.txt")
    assert _body(got) == data
    assert got["Content-Type"] == "text/plain"
    assert got["x-cos-meta-team"] == "ci"
    assert got["ETag"] == put["ETag"]

    head = cos.head_object(Bucket=BUCKET, Key="dir/a b+c.txt")
    assert head["Content-Length"] == str(len(data))
    assert head["x-cos-meta-team"] == "ci"
    assert "Last-Modified" in head

    # the object landed under the decoded key
    rec = emu.get_object("examplebucket", "dir/a b+c.txt")
    assert rec is not None and rec.data == data and rec.metadata == {"team": "ci"}

    cos.delete_object(Bucket=BUCKET, Key="dir/a b+c.txt")
    assert emu.get_object(BUCKET, "dir/a b+c.txt") is None
    with pytest.raises(CosServiceError) as exc:
        cos.head_object(Bucket=BUCKET, Key="dir/a b+c.txt")
    assert exc.value.get_status_code() == 404
    # deleting a missing key succeeds, as on COS
    cos.delete_object(Bucket=BUCKET, Key="dir/a b+c.txt")


def test_missing_key_is_xml_nosuchkey(cos: Any) -> None:
    with pytest.raises(CosServiceError) as exc:
        cos.get_object(Bucket=BUCKET, Key="nope.bin")
    err = exc.value
    assert (err.get_status_code(), err.get_error_code()) == (404, "NoSuchKey")
    assert err.get_request_id() not in ("", "Unknown")
    assert err.get_resource_location() != "Unknown"


def test_missing_bucket_is_nosuchbucket(cos: Any) -> None:
    with pytest.raises(CosServiceError) as exc:
        cos.put_object(Bucket="nobucket-1250000000", Key="k", Body=b"x")
    assert (exc.value.get_status_code(), exc.value.get_error_code()) == (404, "NoSuchBucket")


def test_content_md5_checked(cos: Any) -> None:
    good = base64.b64encode(hashlib.md5(b"abc").digest()).decode()
    cos.put_object(Bucket=BUCKET, Key="md5", Body=b"abc", ContentMD5=good)
    with pytest.raises(CosServiceError) as exc:
        cos.put_object(Bucket=BUCKET, Key="md5", Body=b"abd", ContentMD5=good)
    assert exc.value.get_error_code() == "BadDigest"


@pytest.mark.parametrize(
    ("header", "status", "expected"),
    [
        ("bytes=0-3", 206, b"0123"),
        ("bytes=5-", 206, b"56789"),
        ("bytes=-2", 206, b"89"),
        ("bytes=8-100", 206, b"89"),
    ],
)
def test_range_get(emu: Emulator, cos: Any, header: str, status: int, expected: bytes) -> None:
    emu.put_object("examplebucket", "digits", b"0123456789")
    got = cos.get_object(Bucket=BUCKET, Key="digits", Range=header)
    assert _body(got) == expected
    assert got["Content-Range"].endswith("/10")


def test_range_unsatisfiable(emu: Emulator, cos: Any) -> None:
    emu.put_object("examplebucket", "digits", b"0123456789")
    with pytest.raises(CosServiceError) as exc:
        cos.get_object(Bucket=BUCKET, Key="digits", Range="bytes=20-30")
    assert (exc.value.get_status_code(), exc.value.get_error_code()) == (416, "InvalidRange")


def test_copy_keeps_or_replaces_metadata(emu: Emulator, cos: Any) -> None:
    other = emu.create_bucket("other")
    cos.put_object(
        Bucket=BUCKET, Key="src/é.png", Body=b"PNGDATA", ContentType="image/png", Metadata={"x-cos-meta-a": "1"}
    )
    src = {"Bucket": BUCKET, "Key": "src/é.png", "Region": emu.region}
    res = cos.copy_object(Bucket=other, Key="dst.png", CopySource=src)
    assert res["ETag"] == f'"{hashlib.md5(b"PNGDATA").hexdigest()}"'
    head = cos.head_object(Bucket=other, Key="dst.png")
    assert head["Content-Type"] == "image/png" and head["x-cos-meta-a"] == "1"

    cos.copy_object(
        Bucket=other,
        Key="dst2.png",
        CopySource=src,
        CopyStatus="Replaced",
        ContentType="image/x-test",
        Metadata={"x-cos-meta-b": "2"},
    )
    head2 = cos.head_object(Bucket=other, Key="dst2.png")
    assert head2["Content-Type"] == "image/x-test" and head2["x-cos-meta-b"] == "2" and "x-cos-meta-a" not in head2

    with pytest.raises(CosServiceError) as exc:
        cos.copy_object(Bucket=other, Key="x", CopySource={**src, "Key": "missing"})
    assert exc.value.get_error_code() == "NoSuchKey"


def test_list_pagination_prefix_delimiter(emu: Emulator, cos: Any) -> None:
    keys = [f"photos/{i:03d}.jpg" for i in range(25)] + ["docs/a.txt", "docs/sub/b.txt", "root.txt", "sp ace/x"]
    for k in keys:
        emu.put_object("examplebucket", k, k.encode())

    seen: list[str] = []
    marker = ""
    pages = 0
    while True:
        page = cos.list_objects(Bucket=BUCKET, Prefix="photos/", Marker=marker, MaxKeys=10)
        pages += 1
        seen += [c["Key"] for c in page.get("Contents", [])]
        if page["IsTruncated"] == "false":
            assert "NextMarker" not in page
            break
        marker = page["NextMarker"]
    assert pages == 3
    assert seen == sorted(k for k in keys if k.startswith("photos/"))
    assert all(int(c["Size"]) > 0 for c in cos.list_objects(Bucket=BUCKET, Prefix="docs/")["Contents"])

    top = cos.list_objects(Bucket=BUCKET, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["docs/", "photos/", "sp ace/"]
    assert [c["Key"] for c in top["Contents"]] == ["root.txt"]

    # common prefixes count against MaxKeys and resume after the prefix
    names: list[str] = []
    marker = ""
    while True:
        page = cos.list_objects(Bucket=BUCKET, Delimiter="/", Marker=marker, MaxKeys=2)
        names += [p["Prefix"] for p in page.get("CommonPrefixes", [])] + [c["Key"] for c in page.get("Contents", [])]
        if page["IsTruncated"] == "false":
            break
        marker = page["NextMarker"]
    assert sorted(names) == ["docs/", "photos/", "root.txt", "sp ace/"]

    entry = cos.list_objects(Bucket=BUCKET, Prefix="root")["Contents"][0]
    assert entry["StorageClass"] == "STANDARD"
    assert entry["ETag"] == f'"{hashlib.md5(b"root.txt").hexdigest()}"'
    assert entry["LastModified"].endswith("Z")


def test_list_buckets_on_service_host(emu: Emulator, cos: Any) -> None:
    emu.create_bucket("second")
    names = [b["Name"] for b in cos.list_buckets()["Buckets"]["Bucket"]]
    assert BUCKET in names and "second-1250000000" in names
    assert emu.stats.count(operation="ListBuckets", ok=True) == 1


def test_keys_longer_than_850_utf8_bytes_are_refused(emu: Emulator, cos: Any) -> None:
    """COS documents 850 bytes; the error code (400 KeyTooLong) is the emulator's most plausible choice."""
    at_limit = "k/" + "é" * 424  # 2 + 848 = 850 bytes
    cos.put_object(Bucket=BUCKET, Key=at_limit, Body=b"ok")
    assert emu.get_object("examplebucket", at_limit) is not None
    for key in (at_limit + "x", "a" * 5000):
        with pytest.raises(CosServiceError) as info:
            cos.put_object(Bucket=BUCKET, Key=key, Body=b"no")
        assert (info.value.get_status_code(), info.value.get_error_code()) == (400, "KeyTooLong")
        assert emu.get_object("examplebucket", key) is None
    with pytest.raises(CosServiceError) as copied:
        cos.copy_object(
            Bucket=BUCKET,
            Key="c" * 851,
            CopySource={"Bucket": BUCKET, "Key": at_limit, "Region": "ap-guangzhou"},
        )
    assert copied.value.get_error_code() == "KeyTooLong"


def test_copy_onto_itself_replaces_metadata_and_needs_the_replaced_directive(emu: Emulator, cos: Any) -> None:
    """PUT Object - Copy (cn 436/10881): an object copied onto itself must say x-cos-metadata-directive: Replaced."""
    put = cos.put_object(
        Bucket=BUCKET, Key="self.png", Body=b"PNG", ContentType="image/png", Metadata={"x-cos-meta-a": "1"}
    )
    here = {"Bucket": BUCKET, "Key": "self.png", "Region": emu.region}
    with pytest.raises(CosServiceError) as refused:
        cos.copy_object(Bucket=BUCKET, Key="self.png", CopySource=here)  # directive Copy
    assert refused.value.get_status_code() == 400
    assert cos.head_object(Bucket=BUCKET, Key="self.png")["x-cos-meta-a"] == "1"  # unchanged
    res = cos.copy_object(
        Bucket=BUCKET,
        Key="self.png",
        CopySource=here,
        CopyStatus="Replaced",
        ContentType="image/png",
        Metadata={"x-cos-meta-source": "cos://b/a.png"},
    )
    assert res["ETag"] == put["ETag"]  # the bytes, hence the ETag, are unchanged
    head = cos.head_object(Bucket=BUCKET, Key="self.png")
    assert head["x-cos-meta-source"] == "cos://b/a.png" and "x-cos-meta-a" not in head
    assert head["Content-Type"] == "image/png"
    assert _body(cos.get_object(Bucket=BUCKET, Key="self.png")) == b"PNG"


@pytest.mark.parametrize(
    ("condition", "holds", "fails"),
    [
        ("CopySourceIfMatch", "etag", '"0123456789abcdef0123456789abcdef"'),
        ("CopySourceIfNoneMatch", '"0123456789abcdef0123456789abcdef"', "etag"),
        ("CopySourceIfModifiedSince", "Mon, 01 Jan 2001 00:00:00 GMT", "Fri, 01 Jan 2100 00:00:00 GMT"),
        ("CopySourceIfUnmodifiedSince", "Fri, 01 Jan 2100 00:00:00 GMT", "Mon, 01 Jan 2001 00:00:00 GMT"),
    ],
)
def test_copy_source_conditions_answer_412(emu: Emulator, cos: Any, condition: str, holds: str, fails: str) -> None:
    """Each x-cos-copy-source-If-* that does not hold answers 412 PreconditionFailed and copies nothing."""
    etag = cos.put_object(Bucket=BUCKET, Key="cond.png", Body=b"v1")["ETag"]
    src = {"Bucket": BUCKET, "Key": "cond.png", "Region": emu.region}

    def copy(value: str, dest: str) -> dict[str, Any]:
        value = etag if value == "etag" else value
        return cos.copy_object(Bucket=BUCKET, Key=dest, CopySource=src, **{condition: value})

    with pytest.raises(CosServiceError) as failed:
        copy(fails, "dest-failed.png")
    assert (failed.value.get_status_code(), failed.value.get_error_code()) == (412, "PreconditionFailed")
    assert emu.get_object(BUCKET, "dest-failed.png") is None
    copy(holds, "dest-ok.png")
    assert emu.get_object(BUCKET, "dest-ok.png").data == b"v1"


def test_copy_if_match_fails_once_the_object_was_replaced(emu: Emulator, cos: Any) -> None:
    """The guard of a metadata update: the ETag read before is no longer the object's after another write."""
    first = cos.put_object(Bucket=BUCKET, Key="raced.png", Body=b"writer A")["ETag"]
    cos.put_object(Bucket=BUCKET, Key="raced.png", Body=b"writer B")
    with pytest.raises(CosServiceError) as failed:
        cos.copy_object(
            Bucket=BUCKET,
            Key="raced.png",
            CopySource={"Bucket": BUCKET, "Key": "raced.png", "Region": emu.region},
            CopyStatus="Replaced",
            CopySourceIfMatch=first,
            Metadata={"x-cos-meta-source": "A"},
        )
    assert failed.value.get_status_code() == 412
    assert "source" not in emu.get_object(BUCKET, "raced.png").metadata
    assert emu.stats.count(operation="CopyObject", ok=False) == 1


@pytest.mark.parametrize("key", ["out/a b+c%2F.png", "out/q?versionId=1#x.png", "out/é 图.png"])
def test_copy_onto_itself_with_awkward_keys(emu: Emulator, cos: Any, key: str) -> None:
    """The copy source is the percent-encoded key (the SDK's format_path): '?', '#', '%', '+' and unicode survive."""
    etag = cos.put_object(Bucket=BUCKET, Key=key, Body=b"data")["ETag"]
    cos.copy_object(
        Bucket=BUCKET,
        Key=key,
        CopySource={"Bucket": BUCKET, "Key": key, "Region": emu.region},
        CopyStatus="Replaced",
        CopySourceIfMatch=etag,
        Metadata={"x-cos-meta-source": "tagged"},
    )
    assert emu.get_object(BUCKET, key).metadata == {"source": "tagged"}
    assert emu.list_keys(BUCKET, "out/") == [key]
