"""The `inbox` command: serve, db upgrade, demo, agents, simulate, faq, orders.

Commands that live in outer packages (migrations in `web`, channel simulators in
`connectors`, FAQ import in `faq`) are resolved by import string, like uvicorn's
factory string, so the core never imports them.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from inbox.errors import InboxError
from inbox.settings import Settings

APP_FACTORY = "web.app:serve_app"
MIGRATE = "web.migrate:upgrade"
SIMULATORS = "connectors.simulate:run"
DEMO_ENV = "connectors.simulate:DEMO_PROVIDER_ENV"
FAQ_CLI = "faq.cli"
ORDERS_IMPORT = "inbox.orders_io:import_file"


def resolve(path: str) -> Any:
    """The object named by "module:attr"."""
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)  # type: ignore[no-any-return]


def upgrade_db(settings: Settings) -> None:
    """Run the schema migrations to head."""
    resolve(MIGRATE)(settings.database_url)


async def _with_runtime(settings: Settings, job: Callable[[Any], Any]) -> Any:
    from inbox.bus import LocalBus
    from inbox.db import make_engine, make_sessionmaker
    from inbox.hub import Hub
    from inbox.runtime import Runtime

    engine = make_engine(settings.database_url)
    hub = Hub()
    rt = Runtime(settings=settings, engine=engine, sessions=make_sessionmaker(engine), hub=hub,
                 bus=LocalBus(hub))
    try:
        return await job(rt)
    finally:
        await rt.drain()
        await rt.close()


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    if not os.environ.get("INBOX_PUBLIC_URL"):
        # Providers sign the URL they call; unset, it is where we listen.
        os.environ["INBOX_PUBLIC_URL"] = f"http://{args.host}:{args.port}"
        settings = Settings.from_env()
    if args.demo_providers:
        demo_env: dict[str, str] = resolve(DEMO_ENV)
        for key, value in demo_env.items():
            os.environ.setdefault(key, value)
        # Outbound goes nowhere real: the server's own demo sink answers like the providers.
        local = f"http://127.0.0.1:{args.port}"
        os.environ.setdefault("TWILIO_API_BASE", local + "/_demo/twilio")
        os.environ.setdefault("WHATSAPP_GRAPH_BASE", local + "/_demo/graph")
        os.environ["INBOX_DEMO_PROVIDERS"] = "1"
        settings = Settings.from_env()
        print("demo providers: Twilio/WhatsApp/email webhooks accept `inbox simulate` requests; "
              "replies are not delivered anywhere", flush=True)

    if args.workers > 1 and settings.is_sqlite:
        print("inbox serve: several workers need PostgreSQL (INBOX_DATABASE_URL) and Redis "
              "(INBOX_REDIS_URL); SQLite serves one worker.", file=sys.stderr)
        return 2
    if args.workers > 1 and not settings.redis_url:
        print("inbox serve: several workers need INBOX_REDIS_URL so every agent sees every "
              "event; set it or run one worker.", file=sys.stderr)
        return 2
    if settings.is_sqlite:
        upgrade_db(settings)
    if args.smtp_port:
        os.environ["INBOX_SMTP_LISTEN_PORT"] = str(args.smtp_port)
        os.environ.setdefault("INBOX_SMTP_LISTEN_HOST", args.host)
        settings = Settings.from_env()
    print(f"Omnichannel Inbox on http://{args.host}:{args.port}  (database: "
          f"{'SQLite ' + settings.database_url.split('///')[-1] if settings.is_sqlite else 'PostgreSQL'})",
          flush=True)
    if os.path.exists("var/demo-login.txt"):
        with open("var/demo-login.txt") as fh:
            print(fh.read().rstrip(), flush=True)
    uvicorn.run(APP_FACTORY, factory=True, host=args.host, port=args.port, workers=args.workers,
                proxy_headers=True, forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
                log_level=args.log_level, ws_max_size=65_536,
                # Above info the access log is filtered out anyway; off, uvicorn does not
                # build its arguments for every request.
                access_log=args.log_level.lower() in ("trace", "debug", "info"),
                # Our JSON heartbeat already keeps idle sockets alive every ~20 s; the
                # protocol ping only has to find dead peers, so it runs 3x less often
                # (at 5,000 idle agents the two together were ~500 frames/s).
                ws_ping_interval=60.0, ws_ping_timeout=30.0)
    return 0


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    upgrade_db(settings)
    print("database is up to date")
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from inbox.demo import seed

    if settings.is_sqlite:
        upgrade_db(settings)
    lines: list[str] = asyncio.run(_with_runtime(settings, seed))
    text = "\n".join(lines)
    os.makedirs("var", exist_ok=True)
    with open("var/demo-login.txt", "w") as fh:
        fh.write(text + "\n")
    print(text)
    return 0


def cmd_agents_create(args: argparse.Namespace, settings: Settings) -> int:
    from inbox.agents import create_agent

    if settings.is_sqlite:
        upgrade_db(settings)

    async def job(rt: Any) -> str:
        agent, token = await create_agent(rt, email=args.email, name=args.name, role=args.role,
                                          password=args.password)
        print(f"created {agent.role} {agent.name} <{agent.email}> (id {agent.id}); API token:")
        return token

    token = asyncio.run(_with_runtime(settings, job))
    print(token)
    return 0


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    result: int = resolve(SIMULATORS)(args, settings)
    return result


def cmd_faq(args: argparse.Namespace, settings: Settings) -> int:
    if settings.is_sqlite:
        upgrade_db(settings)
    module = importlib.import_module(FAQ_CLI)
    job = module.import_file if args.faq_command == "import" else module.export
    result: int = asyncio.run(_with_runtime(settings, lambda rt: job(rt, args)))
    return result


def cmd_orders(args: argparse.Namespace, settings: Settings) -> int:
    if settings.is_sqlite:
        upgrade_db(settings)
    job = resolve(ORDERS_IMPORT)
    result: int = asyncio.run(_with_runtime(settings, lambda rt: job(rt, args.file)))
    return result


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (documented in README)."""
    parser = argparse.ArgumentParser(prog="inbox", description="Omnichannel support inbox")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the web server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--smtp-port", type=int, default=None, help="also accept mail by SMTP on this port")
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--demo-providers", action="store_true",
                       help="local demo: fill unset Twilio/WhatsApp/email secrets with demo values "
                            "so `inbox simulate` works without provider accounts")
    serve.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="migrate to the latest schema").set_defaults(func=cmd_db)

    sub.add_parser("demo", help="seed demo agents, customers, conversations").set_defaults(func=cmd_demo)

    agents = sub.add_parser("agents", help="manage agents")
    agents_sub = agents.add_subparsers(dest="agents_command", required=True)
    create = agents_sub.add_parser("create", help="create an agent; prints its API token last")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=["admin", "agent", "faq_editor"])
    create.add_argument("--password", default=None)
    create.set_defaults(func=cmd_agents_create)

    sim = sub.add_parser("simulate", help="play a customer on a running server")
    sim.add_argument("channel", choices=["webchat", "sms", "whatsapp", "email"])
    sim.add_argument("--text", required=True)
    sim.add_argument("--url", default=None, help="server URL (default INBOX_PUBLIC_URL)")
    sim.add_argument("--from", dest="sender", default=None, help="customer phone or email")
    sim.add_argument("--to", dest="recipient", default=None, help="our number or address")
    sim.add_argument("--name", default=None, help="customer display name")
    sim.add_argument("--subject", default=None)
    sim.add_argument("--token", default=None, help="web-chat visitor token to resume")
    sim.add_argument("--wait", type=float, default=3.0, help="seconds to wait for replies")
    sim.add_argument("--meta", action="store_true", help="whatsapp: post as Meta's Cloud API, not Twilio")
    sim.set_defaults(func=cmd_simulate)

    faq = sub.add_parser("faq", help="FAQ entries")
    faq_sub = faq.add_subparsers(dest="faq_command", required=True)
    imp = faq_sub.add_parser("import", help="import JSON or CSV entries")
    imp.add_argument("file")
    imp.set_defaults(func=cmd_faq)
    exp = faq_sub.add_parser("export", help="print every entry as JSON (or CSV)")
    exp.add_argument("--format", choices=["json", "csv"], default="json")
    exp.set_defaults(func=cmd_faq)

    orders = sub.add_parser("orders", help="shop orders")
    orders_sub = orders.add_subparsers(dest="orders_command", required=True)
    oimp = orders_sub.add_parser("import", help="import orders from CSV or JSON")
    oimp.add_argument("file")
    oimp.set_defaults(func=cmd_orders)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `inbox` console script."""
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    try:
        code: int = args.func(args, settings)
    except InboxError as exc:
        print(f"inbox: {exc.detail}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        print(f"inbox: this command is not available in this install ({exc.name})", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
