"""One module per scenario; each exposes `async def run(bench) -> dict` of JSON-ready figures."""
