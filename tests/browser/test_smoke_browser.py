async def test_status_page_renders_in_chromium(live_server, page):
    response = await page.goto(f"{live_server.url}/healthz")
    assert response is not None and response.status == 200
    assert '"ok"' in await page.content()
