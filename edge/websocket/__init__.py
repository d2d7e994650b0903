"""WebSockets at the edge, for both lanes: see edge/README.md ("WebSockets").

handshake: the browser's handshake check, the pod's upgrade request, the
  pod's answer head (pure functions, no I/O).
pod_upgrade: dialing the pod and reading its answer to the upgrade.
aiohttp_lane: relay_websocket, the aiohttp lane's handler.
refusal: relaying a pod's non-101 answer on the aiohttp lane.
relay: PodLink (the pod's socket) and ByteRelay (raw bytes both ways).
farewell: the 1001 Going Away both relays put at a frame boundary.
sessions: open WebSockets by session, closed when the session ends.
settings: WebSocketSettings, the limits EdgeSettings embeds.

Nothing is imported here, so edge.settings can embed the settings without
pulling the relays in.
"""
