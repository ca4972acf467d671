"""Switchboard's entry point: parse the command line, build one Config, start the
right thing (the console, headless gateway, or a tool subcommand)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from functools import partial
from pathlib import Path

from server.cli_types import port, positive
from server.config import AppKey, Config, GatewayConfig

DIST_NAME = "sms-switchboard"
"""The distribution's name on the package index (`switchboard` there is another project);
the command is `switchboard`."""
COMMANDS = (
    ("(none)", "the console: held callbacks answered by hand (--headless: the gateway alone)"),
    ("simulate", "QA any app's gateway: virtual texters send every callback type, each answer judged"),
    ("serve-sl", "the simulated SL alone: its HTTP API, and texters posting to your gateway"),
    ("export", "the whole history as JSON lines, oldest first"),
)
CONSOLE_FPS = 120
"""The console's frame rate ceiling (TEXTUAL_FPS, unless the environment sets it)."""
DEMO_MARK = "DEMO"
"""The file that marks a --demo history (simulated traffic): a real run refuses that directory."""




def _path(text: str) -> str:
    if not text.startswith("/"):
        raise argparse.ArgumentTypeError(f"path must start with '/', got {text!r}")
    return text


def _api_key(text: str) -> AppKey:
    try:
        return AppKey.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _prog() -> str:
    """The name the program was started by: `switchboard` once installed, else `python run.py`."""
    return "python run.py" if Path(sys.argv[0]).name == "run.py" else "switchboard"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{version(DIST_NAME)} (the {DIST_NAME} distribution)"
    except PackageNotFoundError:
        return f"(the {DIST_NAME} distribution is not installed)"


class _VersionAction(argparse.Action):
    """`--version`, looked up only when asked (the distribution lookup costs tens of
    milliseconds, on every start before the gateway listens)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        parser.exit(message=f"{parser.prog} {_version()}\n")


def build_parser() -> argparse.ArgumentParser:
    prog = _prog()
    commands = "\n".join(f"  {name:<10}{what}" for name, what in COMMANDS)
    parser = argparse.ArgumentParser(
        prog=prog,
        usage=f"{prog} [OPTIONS]\n       {prog} {{simulate,serve-sl,export}} [OPTIONS]",
        description="Switchboard: a terminal console for answering an SMS platform's (the Service\n"
                    "Layer's) HTTP callbacks by hand.",
        epilog=f"commands:\n{commands}\n\n'{prog} COMMAND --help' shows a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="show program's version number and exit")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=port, default=8080, help="port to listen on (default: 8080; 0 picks a free one)")
    parser.add_argument("--path", type=_path, default="/", help="path of the Gateway URL (default: /)")
    parser.add_argument("--api-key", dest="api_keys", action="append", type=_api_key, default=[],
                        metavar="[NAME=]KEY", help="accept only these apps' callbacks (repeatable); others get 403")
    parser.add_argument("--reply-timeout", type=positive(float, "--reply-timeout"), default=20.0, metavar="SECONDS",
                        help="seconds a held callback waits for an answer before the fallback (default: 20)")
    parser.add_argument("--fallback", default="", metavar="TEXT",
                        help="reply sent when the deadline passes (default: empty, no reply)")
    parser.add_argument("--max-pending", type=positive(int, "--max-pending"), default=5000, metavar="N",
                        help="held callbacks beyond N get the fallback at once (default: 5000)")
    parser.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                        help="where history is kept (default: the user data directory); --demo keeps "
                             "its own in DIR/demo")
    parser.add_argument("--headless", action="store_true",
                        help="run the gateway with no console: held callbacks get the fallback at once")
    parser.add_argument("--demo", action="store_true",
                        help="feed the console from the built-in SL simulator; its history is kept apart, "
                             "in DIR/demo")
    parser.add_argument("--demo-rate", type=positive(float, "--demo-rate"), default=1.0, metavar="N",
                        help="simulated conversations started per second in --demo (default: 1)")
    parser.add_argument("--demo-seed", type=int, default=None, metavar="S", help="seed for a reproducible --demo")
    parser.add_argument("--sl-url", default="", metavar="URL",
                        help="the SL API base URL for outbound messages (e.g. http://sl.example/api/)")
    parser.add_argument("--sl-api-key", default="", metavar="KEY", help="the api_key for --sl-url")
    parser.add_argument("--no-bell", action="store_true",
                        help="do not ring the terminal bell when texts arrive")
    parser.add_argument("--templates", type=Path, default=None, metavar="FILE",
                        help="load canned replies from a JSON list of {name, body, close_session?, "
                             "reprocess?, tags?} at start (same names are replaced)")
    return parser


def build_export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python run.py export", description="Write the whole history, oldest first.")
    parser.add_argument("--format", choices=["jsonl"], default="jsonl")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE", help="output file (default: stdout)")
    parser.add_argument("--data-dir", type=Path, default=None, metavar="DIR")
    return parser


def _data_dir(given: Path | None) -> Path:
    from data.paths import default_data_dir

    return given if given is not None else default_data_dir()


def _open_store(data_dir: Path):
    from data.store import HistoryStore, StoreError
    from server.process.gc_policy import settle_gc

    try:
        store = HistoryStore.open(data_dir)
        settle_gc()  # no GC stalls from rescanning the history (server/process/gc_policy.py)
        return store
    except StoreError as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _close_store(store) -> bool:
    """Close the history; on a write failure (a full disk) say so in one line, no traceback.
    What could not be written then had not been acknowledged: the SL got a 503 for it."""
    from data.store import StoreError

    try:
        store.close()
    except StoreError as exc:
        print(f"switchboard: the last records could not be written at exit: {exc}", file=sys.stderr)
        return False
    return True


def export_main(argv: list[str]) -> int:
    """Exit 0: every record exported; 1: exported, but records were lost or damaged (each
    notice says which); 2: nothing could be exported."""
    from data.store import HistoryStore, StoreError, StoreInUse, export_on_disk

    args = build_export_parser().parse_args(argv)
    data_dir = _data_dir(args.data_dir)
    store = None
    notices: list[str] = []
    try:
        store = HistoryStore.open(data_dir)
        notices = store.notices
        write = store.export_jsonl
    except StoreInUse:
        # A running console or headless holds it: read what is on disk, write nothing.
        print("switchboard: the history is in use by a running Switchboard; exporting what is on "
              "disk now", file=sys.stderr)
        write = partial(export_on_disk, data_dir, notices=notices)
    except StoreError as exc:
        if not _segments_readable(data_dir):
            print(f"switchboard: {exc}", file=sys.stderr)
            return 2
        # a read-only directory or a full disk: the files are still there to read
        print(f"switchboard: {exc}; exporting what is on disk", file=sys.stderr)
        write = partial(export_on_disk, data_dir, notices=notices)
    try:
        if args.out is None:
            try:
                count = write(sys.stdout)
            except BrokenPipeError:
                # The reader stopped (`| head`): not an error of ours. stdout is pointed at
                # /dev/null so the interpreter's own flush at exit does not fail again.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 0
        else:
            try:
                with open(args.out, "w", encoding="utf-8") as out:
                    count = write(out)
            except OSError as exc:
                print(f"switchboard: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
                return 2
    finally:
        if store is not None:
            store.close()
    for notice in notices:
        print(f"switchboard: {_printable(notice)}", file=sys.stderr)
    print(f"exported {count} records", file=sys.stderr)
    return 1 if notices else 0


def _segments_readable(data_dir: Path) -> bool:
    import os

    try:
        return any(name.startswith("seg-") for name in os.listdir(data_dir))
    except OSError:
        return False


def _printable(text: str) -> str:
    """A notice names files and counts, never texters' words; escape anything unprintable."""
    return "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in text)


def config_from_args(args: argparse.Namespace) -> Config:
    data_dir = _data_dir(args.data_dir)
    if args.demo:
        data_dir = data_dir / "demo"  # keep simulated traffic out of the real history
    return Config(
        gateway=GatewayConfig(
            host=args.host,
            port=args.port,
            path=args.path,
            api_keys=tuple(args.api_keys),
            reply_timeout=args.reply_timeout,
            fallback=args.fallback,
            max_pending=args.max_pending,
        ),
        data_dir=data_dir,
        headless=args.headless,
        sl_url=args.sl_url,
        sl_api_key=args.sl_api_key,
        demo=args.demo,
        demo_rate=args.demo_rate,
        demo_seed=args.demo_seed,
        bell=not args.no_bell,
        templates_file=args.templates,
    )


def _history_kind_refused(data_dir: Path, demo: bool, *, default_place: bool) -> str | None:
    """Keep simulated and real traffic apart: a --demo history is marked (DEMO_MARK) and a
    real run refuses it; --demo refuses a directory that holds an unmarked history, except
    at the default place, where earlier versions kept the demo's unmarked. Marks a new demo
    history. Returns the reason to refuse, or None."""
    mark = data_dir / DEMO_MARK
    if not demo:
        if mark.exists():
            return (f"{data_dir} holds the simulated traffic of --demo, not a real history; "
                    "run with --demo, or choose another --data-dir")
        return None
    if mark.exists():
        return None
    try:
        holds_history = any(name != DEMO_MARK for name in os.listdir(data_dir))
    except FileNotFoundError:
        holds_history = False
    except OSError:
        return None  # not a directory, or unreadable: opening the history says which
    if holds_history and not default_place:
        return (f"{data_dir} holds a real history (it has no {DEMO_MARK} file); --demo keeps its "
                "own in DIR/demo: choose another --data-dir")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        mark.write_text("This history holds simulated traffic from `switchboard --demo`.\n", encoding="utf-8")
    except OSError:
        pass  # opening the history gives the reason
    return None


def main(argv: list[str] | None = None) -> int:
    """A tool's exit status; the console and headless end the process themselves (exit 0,
    1 when history could not be written, 2 for bad input)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "export":
        return export_main(argv[1:])
    if argv and argv[0] == "simulate":
        from server.simulator.cli import simulate_main

        return simulate_main(argv[1:])
    if argv and argv[0] == "serve-sl":
        from server.simulator.cli import serve_sl_main

        return serve_sl_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.demo and args.headless:
        parser.error("--demo needs the console; use 'python run.py serve-sl' for a headless simulator")
    config = config_from_args(args)
    if config.templates_file is not None:
        from server.sms.templates import TemplateError, load_templates_file

        try:
            load_templates_file(config.templates_file)  # whole, before anything is opened or changed
        except TemplateError as exc:
            print(f"switchboard: --templates: {exc}", file=sys.stderr)
            return 2
    refused = _history_kind_refused(config.data_dir, config.demo, default_place=args.data_dir is None)
    if refused:
        print(f"switchboard: {refused}", file=sys.stderr)
        return 2
    store = _open_store(config.data_dir)
    from server.process.quit_signals import catch_for_process
    from server.process.shutdown import guard_process, run_once

    close = run_once(partial(_close_store, store))
    # Once a quit begins, the process ends within 3 s even if the loop wedges; the last
    # resort closes the history (synced, lock released) from the deadline's thread.
    deadline = guard_process(last_resort=close)
    catch_for_process()  # from here on a signal is a clean quit, even during start-up
    try:
        code = _run(config, store)
    finally:
        closed = close()
    deadline.exit(code if closed else 1)


def _run(config: Config, store) -> int:
    from server.gateway.tls_defer import import_aiohttp
    from server.process.event_loop import new_event_loop

    import_aiohttp()  # its TLS certificates are loaded once the gateway listens

    # asyncio.run() with a loop that shares each pass fairly (server/process/event_loop.py)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        if config.headless:
            from server.frontends.headless import run_headless

            return runner.run(run_headless(config, store))
        from server.backend.local import LocalBackend

        # Textual draws at most MAX_FPS frames a second and a change waits for the next
        # one: at 60 a held text's row waited up to 17 ms for its frame. The frames are
        # short now (a repaint of what changed), so 120 halves that wait; Textual reads it
        # once, when imported (benchmarks/desk_bench.py; README, Performance).
        os.environ.setdefault("TEXTUAL_FPS", str(CONSOLE_FPS))
        from tui.app import SwitchboardApp

        # The entry point composes the core; the console gets only its backend.
        app = SwitchboardApp(config, LocalBackend.for_config(config, store))
        runner.run(app.run_async())
        return app.return_code or 0


if __name__ == "__main__":
    raise SystemExit(main())
