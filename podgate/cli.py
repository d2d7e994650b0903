"""The `podgate` console script: run the ingress, run the simulator, hash a password,
import a Zero to JupyterHub values file.

Argument parsing and process exit codes only; everything else is called.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from podgate.schema import ConfigError


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args.handler(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podgate",
        description="The single ingress of a multi-user notebook platform on Kubernetes.",
    )
    parser.add_argument(
        "--version", action="version", version=f"podgate {_version()}", help="print the version"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    # Each option's help says its default: a newcomer reads --help before the README.
    run = commands.add_parser("run", help="run the ingress (embedded kubesim unless configured)")
    run.add_argument(
        "--config",
        metavar="FILE",
        help="YAML config file (default: none, every setting at its default: "
        "the embedded kubesim, the dummy authenticator)",
    )
    run.set_defaults(handler=_run)

    sim = commands.add_parser("sim", help="run the Kubernetes API simulator alone")
    sim.add_argument(
        "--listen",
        default="127.0.0.1:6443",
        metavar="HOST:PORT",
        help="address to serve the Kubernetes API on; port 0 picks a free one "
        "(default: %(default)s)",
    )
    sim.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="write a kubeconfig for it here (default: none written; the URL is printed); "
        "with --node-only, the kubeconfig of the API server to join",
    )
    sim.add_argument(
        "--node-only",
        action="store_true",
        help="no API server: run kubesim's kubelet as a node of the real API server "
        "named by --kubeconfig (default: off)",
    )
    sim.add_argument(
        "--context",
        metavar="NAME",
        help="with --node-only, the kubeconfig context to use (default: its current-context)",
    )
    sim.add_argument(
        "--node-name",
        default="kubesim-node",
        metavar="NAME",
        help="with --node-only, the name of the Node to register (default: %(default)s)",
    )
    sim.add_argument(
        "--data-dir",
        metavar="DIR",
        help="with --node-only, where pods' files and provisioned volumes live "
        "(default: a temporary directory removed at exit)",
    )
    # kubectl sends a bearer token only over TLS, so HTTPS is the default.
    sim.add_argument(
        "--plain-http",
        action="store_true",
        help="serve plain HTTP; kubectl will not work (default: HTTPS with its own CA)",
    )
    sim.set_defaults(handler=_sim)

    hash_password = commands.add_parser(
        "hash-password",
        help="make a password hash for auth.users (reads the password, never from arguments)",
        description="Reads a password twice from the terminal without echo, or one line "
        "from stdin when it is not a terminal, and prints its hash.",
    )
    hash_password.add_argument(
        "--scheme",
        choices=("scrypt", "bcrypt", "argon2"),
        default="scrypt",
        help="hash scheme, one of %(choices)s (default: %(default)s)",
    )
    hash_password.set_defaults(handler=_hash_password)

    z2jh = commands.add_parser(
        "import-z2jh",
        help="translate a Zero to JupyterHub values.yaml into podgate's config, with a report",
        description="Reads a Zero to JupyterHub values file and writes the equivalent podgate "
        "config (or the values of podgate's Helm chart), then a report, one line per z2jh key: "
        "carried over, changed and why, or without a counterpart.",
    )
    z2jh.add_argument("values", metavar="VALUES.yaml", help="the z2jh values file to read")
    z2jh.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write the result here, the report to stdout (default: the result to stdout, "
        "the report to stderr)",
    )
    z2jh.add_argument(
        "--chart-values",
        action="store_true",
        help="write values for podgate's Helm chart (deploy/chart) instead of podgate's config "
        "(default: podgate's config)",
    )
    z2jh.add_argument(
        "--namespace",
        default="podgate",
        metavar="NAME",
        help="the namespace podgate and the user pods run in (default: %(default)s)",
    )
    z2jh.set_defaults(handler=_import_z2jh)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("podgate")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _run(args: argparse.Namespace) -> int:
    from podgate.config import load_config
    from podgate.lifecycle import run_forever

    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"podgate: config error: {e}", file=sys.stderr)
        return 2
    return run_forever(config, args.config)


def _sim(args: argparse.Namespace) -> int:
    if args.node_only:
        return _node_agent(args)
    for flag, value in (("--context", args.context), ("--data-dir", args.data_dir)):
        if value is not None:
            print(f"podgate: {flag} only goes with --node-only", file=sys.stderr)
            return 2
    from kubesim.standalone import run

    return run(args.listen, args.kubeconfig, tls=not args.plain_http)


def _node_agent(args: argparse.Namespace) -> int:
    if not args.kubeconfig:
        print("podgate: --node-only needs --kubeconfig FILE (the API server to join)",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.plain_http:
        print("podgate: --plain-http does not go with --node-only (no API server is served)",
              file=sys.stderr)  # fmt: skip
        return 2
    from kubesim.nodeagent.run import run

    return run(args.kubeconfig, args.context, args.node_name, args.data_dir)


def _hash_password(args: argparse.Namespace) -> int:
    import getpass

    from control.auth import hash_password

    if sys.stdin.isatty():
        try:
            password = getpass.getpass("Password: ")
            again = getpass.getpass("Repeat password: ")
        except (EOFError, KeyboardInterrupt):
            print("\npodgate: no password given", file=sys.stderr)
            return 2
        if password != again:
            print("podgate: the two passwords differ; nothing hashed", file=sys.stderr)
            return 2
    else:
        # One line, for scripts: only its line ending is removed, spaces count.
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        print("podgate: the password is empty; nothing hashed", file=sys.stderr)
        return 2
    try:
        print(hash_password(password, args.scheme))
    except ValueError as e:
        print(f"podgate: {e}", file=sys.stderr)
        return 2
    return 0


def _import_z2jh(args: argparse.Namespace) -> int:
    import re
    from pathlib import Path

    import yaml

    from control.z2jh import Z2JHError, chart_values, parse, translate

    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", args.namespace):
        print(f"podgate: import-z2jh: --namespace {args.namespace!r} is not a namespace name "
              "(a DNS label: a-z, 0-9, -)", file=sys.stderr)  # fmt: skip
        return 2
    try:
        text = Path(args.values).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        print(f"podgate: import-z2jh: cannot read {args.values}: {why}", file=sys.stderr)
        return 2
    try:
        result = translate(parse(text, args.values), args.namespace)
    except Z2JHError as e:
        for problem in e.problems:
            print(f"podgate: import-z2jh: {problem}", file=sys.stderr)
        return 2
    what = "podgate's Helm chart values" if args.chart_values else "podgate's config"
    body = chart_values(result.config, result.cookie_secret) if args.chart_values else result.config
    out = f"# {what} from the Zero to JupyterHub values {Path(args.values).name}\n"
    out += "# (podgate import-z2jh; read its report before you use this)\n"
    out += yaml.safe_dump(body, sort_keys=False, default_flow_style=False)
    report = f"podgate import-z2jh: {args.values} -> {args.output or 'stdout'} ({what})\n"
    report += result.report.render()
    if args.output:
        try:
            Path(args.output).write_text(out, encoding="utf-8")
        except OSError as e:
            print(f"podgate: import-z2jh: cannot write {args.output}: {e.strerror}",
                  file=sys.stderr)  # fmt: skip
            return 2
        sys.stdout.write(report)
    else:
        sys.stdout.write(out)
        sys.stderr.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
