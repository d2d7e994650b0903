"""Certificates from an ACME CA (Let's Encrypt) for the public listener, shared by replicas.

- lease.py: a coordination.k8s.io Lease as a lock, so one replica at a time orders.
- storage.py: the certificate, its key and the ACME account key in one Secret.
- order.py: one order with the `acme` library (certbot's), HTTP-01 only.
- manager.py: the loop: take the stored certificate, order when none or due, renew.

The edge answers the challenges (edge.tls.redirect) and serves the certificate
(edge.tls.ServerCertificate); the wiring connects them. Nothing here imports
the edge.
"""

from control.acme.manager import AcmeManager, CertificateSink
from control.acme.storage import account_thumbprint

__all__ = ["AcmeManager", "CertificateSink", "account_thumbprint"]
