"""Hostile input at both callback receivers (``_targets``: the in-triggerer listener, and the API-server receiver
on uvicorn publishing to the relay), with a real CIJobCallbackTrigger waiting on a real emulator job.

A receiver must answer every bad request with a 4xx (or cut it at its read deadline), keep answering good
callbacks, never let a callback complete a task by itself (the trigger confirms with CI), and keep its memory
bounded. Where uvicorn has no answer (a request head that never ends), the test records what happens and asserts
what holds: good callbacks are still answered.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import itertools
import os
import resource
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.reliability import _jobs, _support, _targets
from tests.reliability._support import BUCKET, FULL_BUCKET

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Response><EventName>TaskFinish</EventName><JobsDetail><JobId>JOBID</JobId><State>&lol9;</State>
</JobsDetail></Response>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Response><EventName>TaskFinish</EventName><JobsDetail><JobId>JOBID</JobId><State>Success</State>
<Message>&xxe;</Message></JobsDetail></Response>"""

XXE_PARAM = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd"> %remote;]>
<Response><JobsDetail><JobId>JOBID</JobId><State>Success</State></JobsDetail></Response>"""


def rss_kib() -> int:
    with open(f"/proc/{os.getpid()}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def forged_xml(job_id: str, state: str = "Success") -> bytes:
    return (
        "<Response><EventName>TaskFinish</EventName><JobsDetail><Code>Success</Code><Message></Message>"
        f"<JobId>{job_id}</JobId><State>{state}</State><Tag>SegmentVideoBody</Tag></JobsDetail></Response>"
    ).encode()


async def raw_post(
    port: int,
    path: str,
    body: bytes,
    content_type: str = "application/xml",
    extra_headers: str = "",
    declared_length: int | None = None,
    timeout: float = 10.0,
) -> int:
    """POST over a raw socket (full control of the bytes); returns the status code, 0 if the server just closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        length = len(body) if declared_length is None else declared_length
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\n{extra_headers}\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        return int(line.split()[1]) if line else 0
    except (ConnectionError, asyncio.IncompleteReadError):
        return 0
    finally:
        writer.close()


async def raw_request(port: int, data: bytes, timeout: float = 10.0) -> int:
    """Send exact bytes; returns the answer's status code, 0 if the server closed without one."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        return int(line.split()[1]) if line else 0
    except (ConnectionError, asyncio.IncompleteReadError):
        return 0
    finally:
        writer.close()


HELD = -1  # the connection was still open and unanswered when the client gave up


async def slow_request(
    port: int, path: str, trickle_seconds: float, *, finish_head: bool, wait_seconds: float = 2.0
) -> tuple[int, float]:
    """Trickle a request one byte per 50 ms for ``trickle_seconds``, then wait up to ``wait_seconds`` for an
    answer. ``finish_head=False``: a slowloris, whose head never ends; True: a complete head (Content-Length 500)
    and a body that trickles. Returns (status, seconds until the answer): 0 when the server closed without an
    answer, ``HELD`` when it neither answered nor closed."""
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml\r\nContent-Length: 500\r\n"
    if finish_head:
        writer.write(f"{head}\r\n".encode())  # at once: only the body is slow
        data: Iterator[int] = itertools.cycle(b"<a>slow</a>")
    else:
        data = itertools.chain(head.encode(), itertools.cycle(b"X-Padding: slow\r\n"))
    answer = asyncio.ensure_future(reader.readline())
    try:
        while not answer.done() and time.monotonic() - start < trickle_seconds:
            writer.write(bytes([next(data)]))
            try:
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.sleep(0.05)
        line = await asyncio.wait_for(answer, wait_seconds)
        return (int(line.split()[1]) if line else 0), time.monotonic() - start
    except asyncio.TimeoutError:
        return HELD, time.monotonic() - start
    except (ConnectionError, asyncio.IncompleteReadError):
        return 0, time.monotonic() - start
    finally:
        answer.cancel()
        writer.close()


@pytest.mark.parametrize("target_name", _targets.TARGETS)
def test_receiver_survives_hostile_callbacks_and_completes_only_the_real_one(
    target_name: str, emu: Any, fast_conn: str, monkeypatch: pytest.MonkeyPatch, figures: Any
) -> None:
    """The same hostile requests at both receivers; at the API-server receiver the callbacks reach the trigger
    through the relay."""
    from airflow_provider_tencent_ci.triggers import callback_listener as cl
    from airflow_provider_tencent_ci.triggers.ci_job import CIJobCallbackTrigger

    emu.set_job_timing(0.05, 0.05)
    emu.put_object(BUCKET, "in/a.mp4", _support.mp4_bytes())
    emu.put_object(BUCKET, "in/b.mp4", _support.mp4_bytes())
    with _targets.target(target_name, monkeypatch, body_timeout=1.0, max_body_bytes=64 * 1024) as target:
        port = target.port
        # Job B finishes normally first: its real callback body is what an attacker would replay.
        nonce_b = cl.new_nonce()
        job_b = _jobs.submit(fast_conn, emu, "in/b.mp4", "out/b.png", cl.callback_url(cl.token_for_nonce(nonce_b)))
        assert _jobs.wait_until(
            lambda: any(c["job_id"] == job_b and c.get("status") == 200 for c in emu.callbacks_sent), 60
        )
        replay_body = next(c["body"] for c in emu.callbacks_sent if c["job_id"] == job_b).encode()
        # Job A is the one our trigger waits for; it is held Running until we release it.
        emu.set_job_timing(0.0, 3600)
        nonce = cl.new_nonce()
        token = cl.token_for_nonce(nonce)
        job_a = _jobs.submit(fast_conn, emu, "in/a.mp4", "out/a.png", cl.callback_url(token))
        path = target.path(token)
        trigger = CIJobCallbackTrigger(
            job_id=job_a,
            bucket=FULL_BUCKET,
            tencentcloud_conn_id=fast_conn,
            poll_interval=300,
            end_time=time.time() + 120,
            callback_nonce=nonce,
        )
        statuses: dict[str, Any] = {}
        rss_before, fds_before = target.rss_kib(), target.open_fds()

        async def scenario() -> list[Any]:
            events: list[Any] = []

            async def run_trigger() -> None:
                async for ev in trigger.run():
                    events.append(ev)
                    return

            task = asyncio.create_task(run_trigger())
            await asyncio.sleep(0.5)  # registered, first poll done (Running)
            forged = forged_xml(job_a)
            wrong = target.path(f"{cl.new_nonce()}.{'A' * 32}")
            statuses["wrong_token"] = await raw_post(port, wrong, forged)
            statuses["no_token"] = await raw_post(port, target.path(""), forged)
            statuses["forged_state"] = await raw_post(port, path, forged)
            statuses["forged_failed_json"] = await raw_post(
                port,
                path,
                b'{"EventName":"TaskFinish","JobsDetail":{"JobId":"%s","State":"Failed"}}' % job_a.encode(),
                "application/json",
            )
            statuses["replay_other_job"] = await raw_post(port, path, replay_body)
            statuses["malformed_xml"] = await raw_post(port, path, b"<Response><JobsDetail><JobId>")
            statuses["malformed_json"] = await raw_post(port, path, b'{"JobsDetail": [', "application/json")
            statuses["json_wrong_shape"] = await raw_post(port, path, b"[1, 2, 3]", "application/json")
            statuses["xml_bomb"] = await raw_post(port, path, BOMB.replace(b"JOBID", job_a.encode()))
            statuses["xxe_file"] = await raw_post(port, path, XXE.replace(b"JOBID", job_a.encode()))
            statuses["xxe_parameter_entity"] = await raw_post(port, path, XXE_PARAM.replace(b"JOBID", job_a.encode()))
            statuses["over_size_cap"] = await raw_post(port, path, b"<Response>" + b"x" * (65 * 1024) + b"</Response>")
            statuses["huge_declared_length"] = await raw_post(port, path, b"", declared_length=10**12)
            chunked = b"5\r\nhello\r\n0\r\n\r\n"
            statuses["chunked_and_length"] = await raw_post(
                port, path, chunked, extra_headers="Transfer-Encoding: chunked\r\n"
            )
            statuses["chunked"] = await raw_request(
                port, f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + chunked
            )
            statuses["get_method"] = await _get(port, path)
            statuses["short_body_stall"] = await raw_post(port, path, b"<Resp", declared_length=100)
            statuses["slow_body"], _ = await slow_request(port, path, 5.0, finish_head=True)
            # Slowloris: 50 connections trickling a head that never ends; good callbacks must still be answered.
            slow = [asyncio.create_task(slow_request(port, path, 3.0, finish_head=False)) for _ in range(50)]
            await asyncio.sleep(0.2)
            good_during = [
                await raw_post(port, target.path(cl.token_for_nonce(cl.new_nonce())), forged_xml("x" * 33))
                for _ in range(5)
            ]
            statuses["good_during_slowloris"] = good_during
            statuses["fds_during_slowloris"] = target.open_fds()
            slow_results = await asyncio.gather(*slow)
            statuses["slowloris"] = sorted({s for s, _ in slow_results})
            statuses["slowloris_max_seconds"] = round(max(t for _, t in slow_results), 2)
            await asyncio.sleep(0.5)
            statuses["events_before_release"] = len(events)
            # Now CI really finishes job A: its callback arrives, is confirmed, and completes the trigger.
            await asyncio.to_thread(emu.force_job_outcome, job_a, "Success")
            await asyncio.wait_for(task, 30)
            return events

        events = asyncio.run(scenario())
        rss_after, fds_after = target.rss_kib(), target.open_fds()
        still_running = target.serving()

    assert statuses["wrong_token"] == 404
    assert statuses["no_token"] == 404
    assert statuses["forged_state"] == 200  # routed (or stored in the relay), but only a hint
    assert statuses["forged_failed_json"] == 200
    assert statuses["replay_other_job"] == 200
    for name in ("malformed_xml", "malformed_json", "json_wrong_shape", "xml_bomb", "xxe_file", "xxe_parameter_entity"):
        assert statuses[name] == 400, (name, statuses[name])
    assert statuses["over_size_cap"] == 413
    assert statuses["huge_declared_length"] == 413
    assert statuses["chunked"] == 411
    # Both framings at once (a request-smuggling shape): uvicorn's parser refuses it (400) before the app.
    assert statuses["chunked_and_length"] == (411 if target_name == "listener" else 400)
    assert statuses["get_method"] == 405
    assert statuses["short_body_stall"] == 408
    assert statuses["slow_body"] == 408  # the receiver's own whole-body deadline
    assert statuses["good_during_slowloris"] == [200] * 5
    if target.header_deadline:
        assert set(statuses["slowloris"]) <= {408, 0}
    else:
        # uvicorn has no header deadline: the heads are held until the client gives up (the ingress in front of
        # the API server cuts them; README "Production callbacks"). If this changes, update README/RELIABILITY.
        assert statuses["slowloris"] == [HELD]
    assert statuses["events_before_release"] == 0, "a forged or replayed callback completed the trigger"
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "success" and payload["job_id"] == job_a and payload["state"] == "Success"
    assert still_running
    growth_mib = (rss_after - rss_before) / 1024
    assert growth_mib < 50, growth_mib
    answered = [v for k, v in statuses.items() if isinstance(v, int) and k.split("_")[0] not in ("events", "fds")]
    answered = [v for v in answered if v > 0]
    figures.record(
        f"{_targets.LABELS[target_name]}: hostile requests",
        bad_requests=len(answered),
        statuses=dict(sorted(collections.Counter(answered).items())),
        slowloris_connections=50,
        slowloris_outcome="cut 408" if target.header_deadline else "held until the client left",
        slowloris_seconds=statuses["slowloris_max_seconds"],
        good_answered_during_slowloris=sum(1 for s in statuses["good_during_slowloris"] if s == 200),
        fds_before=fds_before,
        fds_during_slowloris=statuses["fds_during_slowloris"],
        fds_after=fds_after,
        tasks_completed_falsely=statuses["events_before_release"],
        real_completion_events=len(events),
        rss_growth_mib=round(growth_mib, 1),
    )


async def _get(port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 10)
        return int(line.split()[1]) if line else 0
    finally:
        writer.close()


def test_unkeyed_listener_accepts_nothing(monkeypatch: pytest.MonkeyPatch, figures: Any) -> None:
    """Without a token key there is no usable token: building one fails with a clear error naming the setting, and
    the listener refuses every request (before, the nonce itself was the token and anything well formed was
    accepted and buffered)."""
    from airflow_provider_tencent_ci.triggers import callback_listener as cl

    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", "")
    with _jobs.private_listener(monkeypatch, token_key=None) as listener:
        assert cl._token_key() is None
        for build in (lambda: cl.token_for_nonce(cl.new_nonce()), lambda: cl.channel_token("svb")):
            with pytest.raises(cl.CallbackTokenKeyError, match=r"\[tencent_ci\] callback_token_key.*fernet_key"):
                build()
        body = forged_xml("a" + "0" * 32)

        async def flood() -> list[int]:
            paths = [f"/{cl.new_nonce()}", f"/{uuid.uuid4().hex}", "/ch-svb-0000000000000000"]
            return [await raw_post(listener.port, paths[n % 3], body) for n in range(30)]

        statuses = asyncio.run(flood())
        assert not asyncio.run(cl.ensure_listener()) or cl._INSTANCE is listener
    figures.record(
        "callback listener: no token key",
        requests=len(statuses),
        accepted=statuses.count(200),
        buffered=listener.buffered,
    )
    assert statuses == [404] * 30
    assert listener.buffered == 0 and not listener.router.early


def test_early_buffer_is_bounded_by_what_parsing_makes(monkeypatch: pytest.MonkeyPatch, figures: Any) -> None:
    """Callbacks for tokens nobody waits for are buffered (a callback may beat its trigger). Bodies of tiny
    elements parse into far more memory than their bytes (40 x 1 MiB made +140 MiB when the buffer counted body
    bytes): the buffer must be capped by the estimated size of the parsed messages. (Bodies of 200 KiB keep the
    test fast; a 1 MiB body of tiny elements alone exceeds the cap and is not buffered at all.)"""
    from airflow_provider_tencent_ci.triggers import callback_listener as cl

    with _jobs.private_listener(monkeypatch) as listener:
        filler = "".join(f"<e{n}/>" for n in range(20_000))  # distinct names: one dict entry each
        body = forged_xml("a" + "0" * 32).replace(b"<Message></Message>", f"<Message>{filler}</Message>".encode())
        message = cl.parse_callback(body)
        assert message.cost > 8 * len(body)  # what it holds in memory, not its bytes
        # Counted by body bytes, all 40 would fit under the cap.
        assert 40 * len(body) < listener.router.early_max_bytes < 40 * message.cost
        gc.collect()
        before = rss_kib()

        async def flood() -> list[int]:
            return [await raw_post(listener.port, f"/{cl.token_for_nonce(cl.new_nonce())}", body) for _ in range(40)]

        statuses = asyncio.run(flood())
        gc.collect()
        growth_mib = (rss_kib() - before) / 1024
        buffered_tokens = len(listener.router.early)
        estimate = listener.router.early_bytes
    figures.record(
        "callback listener: early-buffer flood (40 x 200 KiB of tiny elements)",
        accepted=statuses.count(200),
        buffered_tokens=buffered_tokens,
        buffered_estimate_mib=round(estimate / 2**20, 1),
        rss_growth_mib=round(growth_mib, 1),
    )
    assert statuses == [200] * 40
    assert estimate <= listener.router.early_max_bytes
    assert 0 < buffered_tokens < 40  # the oldest were dropped to stay under the cap
    assert growth_mib < 64, f"the early buffer grew memory by {growth_mib:.0f} MiB for 40 callbacks"
