"""The control plane: login, spawning, admin and the REST API under /hub/.

Never imports edge/; the wiring hands it what it needs through small protocols.
"""
