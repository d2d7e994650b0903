"""The fast lane: podgate's own HTTP/1.1 server protocol for the proxied hot path.

A browser connection starts here. A request of the plain, strictly validated
shape (head.py) whose route the edge says may be forwarded as it is
(edge.app.Edge.forwardable) is relayed byte for byte over a raw pod
connection from the edge's one pool (edge.upstream.pool) by the connection
state machine (protocol.py, its steps in state.py, request_head.py,
request_body.py, response_relay.py, websocket.py and handover.py;
edge/README.md draws its states).
Anything else hands the whole connection over to aiohttp's server, which then
serves it for the rest of its life with the full edge logic.

The fast lane never decides routing or authorization itself, never forwards a
request it did not validate, and never buffers a body whole.
"""
