"""The real-control-plane tests use the session fixture `realkube` of tests/conftest.py.

It lives there so that every suite can run against the real API server (the
`both_servers` marker); nothing is defined here.
"""
