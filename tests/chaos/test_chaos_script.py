"""Scripting: matching, `times`, sequences, the hit log, the control API and `serve()`."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from resilience.chaos import ChaosUpstream, Fault, Hit
from tests.support.chaos import ANSWER, MESSAGES, Upstream


async def chat_status(up: Upstream, upstream: str = "u", key: str = "k", model: str = "m") -> int:
    """The status one chat request gets (200 when the SDK returned an answer)."""
    try:
        await up.openai(upstream, key=key).chat.completions.create(model=model, messages=MESSAGES)
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


async def test_times_applies_to_the_next_n_matching_requests_then_healthy(
    inproc: Upstream,
) -> None:
    inproc.chaos.add_fault(Fault(status=503), times=2)
    assert [await chat_status(inproc) for _ in range(3)] == [503, 503, 200]


async def test_a_fault_without_times_applies_forever(inproc: Upstream) -> None:
    inproc.chaos.add_fault(Fault(status=500))
    assert [await chat_status(inproc) for _ in range(4)] == [500] * 4


async def test_the_first_live_match_in_insertion_order_decides(inproc: Upstream) -> None:
    inproc.chaos.add_fault(Fault(status=429), upstream="a", times=1)
    inproc.chaos.add_fault(Fault(status=503))
    assert [await chat_status(inproc, "a") for _ in range(2)] == [429, 503]
    assert await chat_status(inproc, "b") == 503


async def test_a_healthy_rule_ahead_of_a_broad_fault_lets_its_match_through(
    inproc: Upstream,
) -> None:
    inproc.chaos.add_fault(None, api_key="vip")
    inproc.chaos.add_fault(Fault(status=503))
    assert await chat_status(inproc, key="vip") == 200
    assert await chat_status(inproc, key="other") == 503


@pytest.mark.parametrize(
    ("match", "hit", "miss"),
    [
        ({"upstream": "a"}, {"upstream": "a"}, {"upstream": "b"}),
        ({"model": "m1"}, {"model": "m1"}, {"model": "m2"}),
        ({"api_key": "k1"}, {"key": "k1"}, {"key": "k2"}),
    ],
)
async def test_a_fault_applies_only_to_requests_that_match(
    inproc: Upstream, match: dict[str, Any], hit: dict[str, str], miss: dict[str, str]
) -> None:
    inproc.chaos.add_fault(Fault(status=500), **match)
    assert await chat_status(inproc, **miss) == 200
    assert await chat_status(inproc, **hit) == 500


async def test_a_fault_matched_by_api_spares_the_other_apis(inproc: Upstream) -> None:
    inproc.chaos.add_fault(Fault(status=500), api="embeddings")
    inproc.chaos.add_fault(Fault(status=529), api="messages")
    assert await chat_status(inproc) == 200
    with pytest.raises(openai.InternalServerError):
        await inproc.openai().embeddings.create(model="e", input="x")
    with pytest.raises(anthropic.OverloadedError):
        await inproc.anthropic().messages.create(model="m", max_tokens=5, messages=MESSAGES)


async def test_sequence_gives_one_request_each_none_healthy_then_healthy(
    inproc: Upstream,
) -> None:
    ids = inproc.chaos.sequence([Fault(status=500), None, Fault(status=429)], upstream="u")
    assert len(ids) == 3
    assert [await chat_status(inproc) for _ in range(4)] == [500, 200, 429, 200]
    assert await chat_status(inproc, "other") == 200


async def test_remove_fault_and_clear_faults_stop_faults(inproc: Upstream) -> None:
    first = inproc.chaos.add_fault(Fault(status=500))
    inproc.chaos.add_fault(Fault(status=503))
    assert inproc.chaos.remove_fault(first) is True
    assert inproc.chaos.remove_fault(first) is False
    assert await chat_status(inproc) == 503
    inproc.chaos.clear_faults()
    assert await chat_status(inproc) == 200
    assert inproc.chaos.hit_count() == 2  # clearing faults keeps the hits


async def test_the_hit_log_records_every_request_in_order(inproc: Upstream) -> None:
    fault = Fault(status=429, retry_after="1")
    inproc.chaos.add_fault(fault, upstream="b", times=1)
    await inproc.anthropic("a", key="ka").messages.create(
        model="claude", max_tokens=5, messages=MESSAGES
    )
    inproc.clock.advance(1.5)
    assert await chat_status(inproc, "b", key="kb", model="gpt") == 429
    stream = await inproc.openai("b").chat.completions.create(
        model="gpt", messages=MESSAGES, stream=True
    )
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == ANSWER
    await inproc.openai("c").embeddings.create(model="emb", input="x")
    start = 1_000.0
    claude = {"max_tokens": 5, "messages": MESSAGES, "model": "claude"}
    gpt = {"messages": MESSAGES, "model": "gpt"}
    emb = {"input": "x", "model": "emb", "encoding_format": "base64"}  # the SDK's default
    assert inproc.chaos.hits == [
        Hit("a", "messages", "claude", "ka", False, None, start, claude),
        Hit("b", "chat", "gpt", "kb", False, fault, start + 1.5, gpt),
        Hit("b", "chat", "gpt", "k", True, None, start + 1.5, {**gpt, "stream": True}),
        Hit("c", "embeddings", "emb", "k", False, None, start + 1.5, emb),
    ]
    assert Hit("a", "chat", None, None, False, None, start).body is None  # the default
    assert inproc.chaos.hit_count() == 4
    assert inproc.chaos.hit_count(upstream="b") == inproc.chaos.hit_count(model="gpt") == 2
    assert inproc.chaos.hit_count("b", "gpt", "chat", "kb") == 1
    assert inproc.chaos.hit_count(api="embeddings", api_key="k") == 1
    inproc.chaos.reset()
    assert inproc.chaos.hits == [] and await chat_status(inproc) == 200


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"status": "503"}, "status"),
        ({"status": 99}, "status"),
        ({"latency_s": -1}, "latency_s"),
        ({"drop_after_chunks": 1.5}, "drop_after_chunks"),
        ({"hang": "yes"}, "hang"),
        ({"retry_after": 5}, "retry_after"),
        ({"statuss": 500}, "statuss"),
    ],
)
def test_a_fault_with_a_wrong_field_is_refused_up_front(
    fields: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        Fault.from_dict(fields)


def test_a_rule_with_a_wrong_match_is_refused_up_front() -> None:
    chaos = ChaosUpstream()
    with pytest.raises(ValueError, match="times"):
        chaos.add_fault(Fault(status=500), times=0)
    with pytest.raises(ValueError, match="api"):
        chaos.add_fault(Fault(status=500), api="completions")  # type: ignore[arg-type]
    assert Fault.from_dict(Fault(status=429, retry_after="2").as_dict()) == Fault(
        status=429, retry_after="2"
    )


# -- the control API, as another process uses it -------------------------------------------


async def test_faults_scripted_over_http_apply_and_are_listed_and_removed(
    inproc: Upstream,
) -> None:
    http = inproc.http
    added = await http.post(
        "http://chaos/_chaos/faults",
        json={"fault": {"status": 503, "retry_after": "2"}, "upstream": "u", "times": 2},
    )
    assert added.status_code == 200
    rule = added.json()["id"]
    listed = (await http.get("http://chaos/_chaos/faults")).json()["faults"]
    assert listed == [
        {
            "id": rule,
            "fault": {"status": 503, "retry_after": "2"},
            "upstream": "u",
            "model": None,
            "api_key": None,
            "api": None,
            "remaining": 2,
            "probability": None,
        }
    ]
    assert await chat_status(inproc) == 503
    assert (await http.delete(f"http://chaos/_chaos/faults/{rule}")).status_code == 200
    assert (await http.delete(f"http://chaos/_chaos/faults/{rule}")).status_code == 404
    assert await chat_status(inproc) == 200


async def test_sequences_hits_and_reset_over_http(inproc: Upstream) -> None:
    http = inproc.http
    seq = await http.post(
        "http://chaos/_chaos/sequence",
        json={"faults": [{"status": 500}, None], "upstream": "u", "api": "chat"},
    )
    assert seq.status_code == 200 and len(seq.json()["ids"]) == 2
    assert [await chat_status(inproc) for _ in range(3)] == [500, 200, 200]
    hits = (await http.get("http://chaos/_chaos/hits")).json()["hits"]
    assert [(h["upstream"], h["api"], h["api_key"], h["fault"]) for h in hits] == [
        ("u", "chat", "k", {"status": 500}),
        ("u", "chat", "k", None),
        ("u", "chat", "k", None),
    ]
    assert (await http.delete("http://chaos/_chaos/hits")).status_code == 200
    assert inproc.chaos.hits == []
    await http.post("http://chaos/_chaos/faults", json={"fault": {"status": 500}})
    assert (await http.delete("http://chaos/_chaos/faults")).status_code == 200
    assert await chat_status(inproc) == 200
    assert (await http.post("http://chaos/_chaos/reset")).status_code == 200
    assert inproc.chaos.hits == []


@pytest.mark.parametrize(
    ("path", "body", "complaint"),
    [
        ("/_chaos/faults", {"fault": {"statuss": 500}}, "statuss"),
        ("/_chaos/faults", {"fault": {"status": 500}, "times": 0}, "times"),
        ("/_chaos/faults", {"fault": {"status": 500}, "api": "completions"}, "api"),
        ("/_chaos/faults", {"fault": {"status": 500}, "upstrem": "u"}, "upstrem"),
        ("/_chaos/faults", {"fault": "503"}, "fault"),
        ("/_chaos/faults", [1], "object"),
        ("/_chaos/sequence", {"faults": {"status": 500}}, "faults"),
    ],
)
async def test_bad_control_requests_are_refused_with_the_reason(
    inproc: Upstream, path: str, body: Any, complaint: str
) -> None:
    response = await inproc.http.post(f"http://chaos{path}", json=body)
    assert response.status_code == 400
    assert complaint in response.json()["error"]
    assert inproc.chaos.add_fault(None) == 1  # nothing was added


# -- serve() ------------------------------------------------------------------------------


async def test_serve_starts_and_stops_cleanly_twice_in_a_row() -> None:
    chaos = ChaosUpstream()
    baseline = asyncio.all_tasks()
    roots = []
    for _ in range(2):
        async with chaos.serve() as root, httpx2.AsyncClient() as http:
            roots.append(root)
            sdk = anthropic.AsyncAnthropic(
                api_key="k", base_url=f"{root}/u", max_retries=0, http_client=http
            )
            message = await sdk.messages.create(model="m", max_tokens=5, messages=MESSAGES)
            assert message.content[0].text == ANSWER  # type: ignore[union-attr]
        assert asyncio.all_tasks() == baseline
        async with httpx2.AsyncClient() as http:
            with pytest.raises(httpx2.ConnectError):
                await http.get(f"{root}/_chaos/hits")
    assert all(r.startswith("http://127.0.0.1:") for r in roots)
    assert chaos.hit_count() == 2


async def test_the_control_api_works_over_the_socket() -> None:
    chaos = ChaosUpstream()
    async with chaos.serve() as root, httpx2.AsyncClient(base_url=root) as http:
        await http.post("/_chaos/faults", json={"fault": {"status": 401}, "api_key": "bad"})
        sdk = openai.AsyncOpenAI(
            api_key="bad", base_url=f"{root}/u/v1", max_retries=0, http_client=http
        )
        with pytest.raises(openai.AuthenticationError):
            await sdk.chat.completions.create(model="m", messages=MESSAGES)
        hits = (await http.get("/_chaos/hits")).json()["hits"]
    assert [(h["api_key"], h["fault"]) for h in hits] == [("bad", {"status": 401})]


@pytest.mark.parametrize("fault", [Fault(hang=True), Fault(stall_after_chunks=1)])
async def test_leaving_serve_cuts_requests_still_in_flight_and_leaves_no_task(
    fault: Fault,
) -> None:
    arrived = asyncio.Event()

    def clock() -> float:  # stamps the hit: the request has reached the server
        arrived.set()
        return 0.0

    chaos = ChaosUpstream(clock=clock)
    chaos.add_fault(fault)
    baseline = asyncio.all_tasks()

    async def call(sdk: openai.AsyncOpenAI) -> None:
        stream = await sdk.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        async for _chunk in stream:
            pass

    async with httpx2.AsyncClient() as http:
        started = asyncio.get_running_loop().time()
        async with chaos.serve() as root:
            sdk = openai.AsyncOpenAI(
                api_key="k", base_url=f"{root}/u/v1", max_retries=0, timeout=30, http_client=http
            )
            client = asyncio.create_task(call(sdk))
            await arrived.wait()
        with pytest.raises(openai.APIConnectionError):
            await client
        # loosely: not the 3 s uvicorn grants a connection that never finishes
        assert asyncio.get_running_loop().time() - started < 2.5
    assert asyncio.all_tasks() == baseline


def test_a_probability_rule_applies_to_that_share_and_lets_the_rest_through() -> None:
    from resilience.chaos.script import Script

    script = Script(lambda: 0.0, seed=11)
    script.add(Fault(status=503), probability=0.3)
    script.add(Fault(status=500), probability=0.5)  # sees only what the first let through
    taken = [script.take("u", "chat", "m", None, False) for _ in range(2000)]
    first = sum(1 for f in taken if f is not None and f.status == 503)
    second = sum(1 for f in taken if f is not None and f.status == 500)
    # binomial(2000, 0.3) and (2000, 0.35): 4.5 standard deviations either way
    assert abs(first - 600) <= 4.5 * (2000 * 0.3 * 0.7) ** 0.5
    assert abs(second - 700) <= 4.5 * (2000 * 0.35 * 0.65) ** 0.5
    again = Script(lambda: 0.0, seed=11)
    again.add(Fault(status=503), probability=0.3)
    again.add(Fault(status=500), probability=0.5)
    assert [again.take("u", "chat", "m", None, False) for _ in range(2000)] == taken  # seeded


@pytest.mark.parametrize("probability", [0, -0.1, 1.5, True, "0.3"])
def test_a_probability_outside_0_to_1_is_refused(probability: object) -> None:
    from resilience.chaos.script import Script

    with pytest.raises(ValueError, match="probability: must be a number in"):
        Script(lambda: 0.0).add(Fault(status=503), probability=probability)  # type: ignore[arg-type]
