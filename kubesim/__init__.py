"""kubesim: a local simulator of the Kubernetes API subset podgate uses.

A test double for Kubernetes, never a replacement for it. It speaks the real
REST wire format over HTTP and imports none of podgate's own packages.
"""
