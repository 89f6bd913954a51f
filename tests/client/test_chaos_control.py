"""The chaos upstream scripted over HTTP, as another process (the demo, a gateway test) does."""

from __future__ import annotations

import httpx2
import openai
import pytest

from resilience.chaos import ChaosUpstream, Fault


async def test_faults_scripted_over_http_apply_and_hits_are_reported() -> None:
    chaos = ChaosUpstream()
    async with httpx2.AsyncClient(transport=chaos.transport(), base_url="http://chaos") as http:
        added = await http.post(
            "/_chaos/faults",
            json={"fault": {"status": 503, "retry_after": "2"}, "upstream": "u", "times": 1},
        )
        assert added.status_code == 200 and added.json()["id"] >= 1
        sdk = openai.AsyncOpenAI(
            api_key="k", base_url="http://chaos/u/v1", max_retries=0, http_client=http
        )
        with pytest.raises(openai.InternalServerError) as info:
            await sdk.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}]
            )
        assert info.value.response.headers["retry-after"] == "2"
        answer = await sdk.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
        assert answer.choices[0].message.content
        hits = (await http.get("/_chaos/hits")).json()["hits"]
        assert [(h["upstream"], h["api_key"], h["fault"]) for h in hits] == [
            ("u", "k", {"status": 503, "retry_after": "2"}),
            ("u", "k", None),
        ]
        bad = await http.post("/_chaos/faults", json={"fault": {"statuss": 500}})
        assert bad.status_code == 400 and "statuss" in bad.json()["error"]
        assert (await http.post("/_chaos/reset")).status_code == 200
    assert chaos.hits == []


async def test_sequence_gives_one_request_each_then_healthy() -> None:
    chaos = ChaosUpstream()
    chaos.sequence([Fault(status=500), None, Fault(status=429)], upstream="u")
    statuses = []
    async with httpx2.AsyncClient(transport=chaos.transport(), base_url="http://chaos") as http:
        for _ in range(4):
            response = await http.post(
                "/u/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            )
            statuses.append(response.status_code)
    assert statuses == [500, 200, 429, 200]
    assert chaos.hit_count(upstream="u", api="chat") == 4
