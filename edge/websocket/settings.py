"""WebSocket limits of the edge, as a small typed dataclass EdgeSettings embeds.

A leaf module (no imports of ours), so edge.settings can embed it without
an import cycle. Plain data: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WebSocketSettings:
    """How the edge relays WebSockets; EdgeSettings carries one as its `websocket` field.

    Connecting to the pod uses EdgeSettings.upstream.connect_timeout, like HTTP.
    """

    # Seconds for the pod to answer the upgrade request, and between body reads
    # of a non-101 answer.
    handshake_timeout: float = 30.0
    # Bytes a side may have waiting to be written before the other side's
    # reading pauses: bounds the relay's memory per socket under bulk traffic.
    write_buffer_high: int = 256 * 1024

    def __post_init__(self) -> None:
        if self.handshake_timeout <= 0:
            raise ValueError("websocket.handshake_timeout must be positive")
        if self.write_buffer_high < 1024:
            raise ValueError("websocket.write_buffer_high must be at least 1024 bytes")
