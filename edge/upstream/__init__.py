"""The edge's side facing pods: one connection pool for both lanes, and reading pods' answers.

pool.py keeps raw keep-alive connections per target (one `PodPool` per edge,
shared by the fast lane and the aiohttp lane); response.py reads a pod's
response head strictly and follows its body's framing; exchange.py is the
aiohttp lane's request/response over a pooled connection. The fast lane
drives pool connections itself (edge.fastlane.request_body, response_relay).
"""
