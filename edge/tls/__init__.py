"""TLS on the public listener: certificates loaded and checked, reloaded, and sniffed.

- certificate.py: a certificate and key (PEM files) checked and made into a
  server SSLContext with modern defaults; one clear problem when they are bad.
- reloader.py: the context in force, swapped when the files change (new
  connections get the new one, open ones keep theirs).
- sniff.py: the first byte of a new connection tells TLS from plain HTTP, which
  gets a 400 instead of a hang.
- redirect.py: the plain-HTTP listener that sends browsers to https and answers
  ACME HTTP-01 challenges.

Nothing here routes requests, and nothing here talks to Kubernetes.
"""

from edge.tls.certificate import CertificateProblem, LoadedCertificate, load_certificate
from edge.tls.reloader import ServerCertificate

__all__ = ["CertificateProblem", "LoadedCertificate", "ServerCertificate", "load_certificate"]
