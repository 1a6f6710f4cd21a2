"""Property-based tests (hypothesis, bounded examples) of the parsers and of request signing.

Oracles: the emulator's own XML writer and signature verifier. Keys are signed by our hook (through the COS SDK),
sent to the emulator, which must accept the signature and round-trip the key exactly."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_tencent_ci.exceptions import TencentCloudError
from tests.reliability._support import BUCKET, FULL_BUCKET

FAST = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
IO = settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Text XML 1.0 can carry (no control characters, no surrogates).
xml_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)
states = st.sampled_from(["Submitted", "Running", "Success", "Failed", "Pause", "Cancel"])
job_ids = st.from_regex(r"a[0-9a-f]{32}", fullmatch=True)


@st.composite
def jobs_detail(draw: Any) -> dict[str, Any]:
    return {
        "Code": draw(st.sampled_from(["Success", "InternalError", "InputFileInvalid"])),
        "Message": draw(xml_text),
        "JobId": draw(job_ids),
        "State": draw(states),
        "CreationTime": "2024-01-01T00:00:00+0800",
        "Tag": "SegmentVideoBody",
        "Input": {"Object": draw(xml_text.filter(lambda s: s.strip() != "")), "Region": "ap-guangzhou"},
        "Operation": {
            "SegmentVideoBody": {"Mode": draw(st.sampled_from(["Mask", "Foreground"]))},
            "UserData": draw(xml_text),
        },
    }


# -- callback bodies ------------------------------------------------------------------------------------------
@FAST
@given(
    details=st.lists(jobs_detail(), min_size=1, max_size=4),
    as_json=st.booleans(),
    numbers=st.booleans(),
    single=st.booleans(),
)
def test_callback_parser_round_trips_ci_bodies(
    details: list[dict[str, Any]], as_json: bool, numbers: bool, single: bool
) -> None:
    from airflow_provider_tencent_ci.emulator.xmlutil import to_xml
    from airflow_provider_tencent_ci.triggers.callback_listener import parse_callback

    if as_json:
        docs = [dict(d, Code=7) if numbers else d for d in details]
        payload: Any = docs[0] if single and len(docs) == 1 else docs
        body = json.dumps({"EventName": "TaskFinish", "JobsDetail": payload}, ensure_ascii=False).encode()
        msg = parse_callback(body, "application/json")
    else:
        body = to_xml("Response", {"EventName": "TaskFinish", "JobsDetail": details})
        msg = parse_callback(body, "application/xml")
    assert msg.event_name == "TaskFinish"
    assert [(j["JobId"], j["State"]) for j in msg.jobs] == [(d["JobId"], d["State"]) for d in details]
    for got in msg.jobs:
        assert all(isinstance(v, (str, dict, list)) for v in got.values())  # scalars normalised to strings


@FAST
@given(
    body=st.one_of(
        st.binary(max_size=300),
        xml_text.map(str.encode),
        st.recursive(
            st.none() | st.booleans() | st.integers() | xml_text,
            lambda c: st.lists(c, max_size=3) | st.dictionaries(xml_text, c, max_size=3),
            max_leaves=10,
        ).map(lambda v: json.dumps(v).encode()),
    ),
    ctype=st.sampled_from(["", "application/xml", "application/json", "text/plain"]),
)
def test_callback_parser_never_crashes(body: bytes, ctype: str) -> None:
    from airflow_provider_tencent_ci.triggers.callback_listener import CallbackParseError, parse_callback

    try:
        msg = parse_callback(body, ctype)
    except CallbackParseError:
        return
    assert msg.jobs and all(j.get("JobId") and j.get("State") for j in msg.jobs)


# -- JobsDetail (query answers), through the hook's parser ---------------------------------------------------
@FAST
@given(details=st.lists(jobs_detail(), min_size=0, max_size=5), missing=st.lists(job_ids, max_size=3))
def test_jobs_detail_parser_round_trips(details: list[dict[str, Any]], missing: list[str]) -> None:
    from airflow_provider_tencent_ci.emulator.xmlutil import to_xml
    from airflow_provider_tencent_ci.hooks.ci import CIHook, JobsQuery, parse_xml

    value: dict[str, Any] = {}
    if details:
        value["JobsDetail"] = details
    if missing:
        value["NonExistJobIds"] = missing
    result = JobsQuery()
    CIHook._merge_query(result, parse_xml(to_xml("Response", value)))
    assert [j["JobId"] for j in result.jobs] == [d["JobId"] for d in details]
    # Leaves are read stripped, as cos-python-sdk-v5 (xmltodict) reads them (common/xml.py).
    assert [j["Message"] for j in result.jobs] == [d["Message"].strip() for d in details]
    assert result.missing == missing


@IO
@given(known=st.integers(0, 12), unknown=st.lists(job_ids, max_size=12, unique=True))
def test_aget_jobs_partitions_ids_against_the_emulator(
    emu: Any, fast_conn: str, known: int, unknown: list[str]
) -> None:
    """Any mix of existing and unknown ids, over the batch size: every id comes back exactly once, either in jobs
    or in missing (signed by our async signer, verified by the emulator)."""
    from airflow_provider_tencent_ci.hooks.ci import CIHook
    from tests.reliability import _jobs
    from tests.reliability._support import mp4_bytes

    if len(emu.jobs) < 12:  # created at the first example (the fixture resets the emulator once per test)
        emu.put_object(BUCKET, "in/p.mp4", mp4_bytes())
        for n in range(12 - len(emu.jobs)):
            _jobs.submit(fast_conn, emu, "in/p.mp4", f"out/p{n}.png")
    existing = [j["JobId"] for j in emu.jobs][:known]
    ids = existing + [u for u in unknown if u not in existing]
    if not ids:
        return
    hook = CIHook(tencentcloud_conn_id=fast_conn, job_query_batch_size=5)

    async def query() -> Any:
        try:
            return await hook.aget_jobs(FULL_BUCKET, ids)
        finally:
            await hook.aclose()

    result = asyncio.run(query())
    got = [j["JobId"] for j in result.jobs]
    assert sorted(got + result.missing) == sorted(ids)
    assert set(got) == set(existing)


# -- error bodies -------------------------------------------------------------------------------------------
@FAST
@given(
    status=st.integers(400, 599),
    code=st.one_of(
        st.none(),
        st.sampled_from(
            ["SlowDown", "InternalError", "AccessDenied", "NoSuchKey", "InvalidArgument", "RequestLimitExceeded"]
        ),
        xml_text,
    ),
    message=xml_text,
    garbage=st.binary(max_size=200),
    well_formed=st.booleans(),
)
def test_error_bodies_always_map_to_a_tencent_error(
    status: int, code: str | None, message: str, garbage: bytes, well_formed: bool
) -> None:
    from airflow_provider_tencent_ci.emulator.xmlutil import to_xml
    from airflow_provider_tencent_ci.hooks.ci_jobs import reply_error

    body = to_xml("Error", {"Code": code, "Message": message, "RequestId": "rid-1"}) if well_formed else garbage
    err = reply_error("DescribeJobs", status, body, "hdr-rid")
    assert isinstance(err, TencentCloudError)
    assert err.status_code == status
    assert len(str(err)) < 2000
    from airflow_provider_tencent_ci.exceptions import AUTH_CODES, NOT_FOUND_CODES

    service_code = code if well_formed and code else None
    # A 5xx/429 is retryable unless the service's own code says the credential or the object is the problem.
    if (status >= 500 or status == 429) and not (
        service_code in AUTH_CODES or service_code in NOT_FOUND_CODES or (service_code or "").startswith("AuthFailure")
    ):
        assert err.retryable
    if well_formed and code in ("AccessDenied", "NoSuchKey", "InvalidArgument") and status < 500 and status != 429:
        assert not err.retryable


# -- UploadResult and signing, end to end -------------------------------------------------------------------
KEY_CHARS = st.sampled_from([*list("abcXYZ019-_.~ +%?#&=;,:@!$'()*[]"), "é", "中", "文", "😀", "/", "//"])
object_keys = (
    st.lists(KEY_CHARS, min_size=1, max_size=24)
    .map("".join)
    .filter(lambda k: k.strip("/ ") != "" and not k.endswith("/") and "//" not in k)
    # A "." or ".." path segment is rewritten by the HTTP client before sending (urllib3 removes dot segments, RFC
    # 3986 section 5.2.4), so the path COS receives is not the one the SDK signed: such keys are not addressable.
    .filter(lambda k: not {".", ".."} & set(k.split("/")))
)


@IO
@given(key=object_keys)
def test_signed_keys_round_trip_through_the_emulator(emu: Any, fast_conn: str, key: str) -> None:
    """Keys with spaces, unicode, '+', '%', '?', '#', leading '/': our hook signs (the SDK's signer with the STS
    token), the emulator verifies; put, head, get and list must all see the same key."""
    from airflow_provider_tencent_ci.hooks.ci import CIHook

    hook = CIHook(tencentcloud_conn_id=fast_conn)
    payload = key.encode("utf-8") * 3
    emu.stats.reset()
    before = set(emu.list_keys(BUCKET))
    hook.put_object(BUCKET, key, payload)
    created = set(emu.list_keys(BUCKET)) - before
    stored = key.removeprefix("/")  # one leading '/' is the path separator, as in the SDK and COS
    assert created == {stored}, (key, created)
    assert hook.get_object_bytes(BUCKET, key) == payload
    head = hook.head_object(BUCKET, key)
    assert head is not None and int(head["Content-Length"]) == len(payload)
    listed = [o["Key"] for o in hook.list_objects(BUCKET, prefix=stored)]
    assert stored in listed
    hook.delete_object(BUCKET, key)
    assert emu.get_object(BUCKET, stored) is None
    assert emu.stats.count(ok=False) == 0  # no signature was refused
    assert emu.stats.errors(code="SignatureDoesNotMatch") == 0


@IO
@given(keys=st.lists(object_keys, min_size=1, max_size=5, unique=True))
def test_upload_result_lists_every_rule_output(emu: Any, fast_conn: str, keys: list[str]) -> None:
    """ImageProcess with 1..5 rules whose outputs have awkward keys: UploadResult (parsed by the SDK + our
    normaliser) lists one Object per rule with the key the emulator stored."""
    from airflow_provider_tencent_ci.hooks.ci import CIHook
    from tests.reliability._support import png

    emu.put_object(BUCKET, "src/a.png", png(8, 8), content_type="image/png")
    hook = CIHook(tencentcloud_conn_id=fast_conn)
    rules = [{"fileid": "/" + k.lstrip("/"), "rule": "ci-process=AIPortraitMatting"} for k in keys]
    result = hook.image_process(BUCKET, "src/a.png", {"is_pic_info": 1, "rules": rules})
    objects = result["ProcessResults"]
    assert [o["Key"].lstrip("/") for o in objects] == [k.lstrip("/") for k in keys]
    for k in keys:
        assert emu.get_object(BUCKET, k.lstrip("/")) is not None
    assert all(isinstance(o.get("Size"), int) for o in objects)


def test_property_figures(figures: Any) -> None:
    figures.record(
        "properties: parsers and signing (hypothesis)",
        property_tests=7,
        max_examples_parsers=FAST.max_examples,
        max_examples_through_emulator=IO.max_examples,
    )
