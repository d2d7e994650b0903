"""`python -m kubesim --listen HOST:PORT --kubeconfig FILE [--tls] [--no-kubelet]`."""

from __future__ import annotations

import argparse
import logging

from kubesim.standalone import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubesim", description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:6443", help="HOST:PORT (port 0: any)")
    parser.add_argument("--kubeconfig", help="write a kubeconfig for this cluster here")
    parser.add_argument("--tls", action="store_true", help="serve https with a fresh CA")
    parser.add_argument("--no-kubelet", action="store_true", help="API server only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    return run(args.listen, args.kubeconfig, tls=args.tls, kubelet=not args.no_kubelet)


if __name__ == "__main__":
    raise SystemExit(main())
