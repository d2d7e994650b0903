"""The side-by-side benchmark harness behind bench/run.

It starts peers (no proxy, nginx, configurable-http-proxy, podgate) in
front of the same upstreams, drives them with wrk and a small aiohttp
WebSocket client, and reports medians and ratios. It is a measuring tool,
never part of the product: nothing under edge/, control/, routes/,
metrics/ or podgate/ may import it.
"""
