async def test_stats_and_samples(client, admin_headers):
    r = await client.get("/api/stats", headers=admin_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["finished_per_hour"]) == 24
    assert body["nodes"]["online"] == 0
