"""`emu-video juice {create,serve,report}`: run a JUICE pairwise human evaluation.

create  match two folders of sampler outputs into pairs, write the study
        database and print one private link per rater
serve   serve the rating page (raters open their links; votes go to the db)
report  win rates (majority vote), 95% CIs, reasons, Fleiss' kappa, CSV + PNG
"""

from __future__ import annotations

import argparse
import os
import sys

from emu_jax.errors import UserError, one_line

EPILOG = """example:
  emu-video juice create --a out/emu --b out/baseline --names Emu Baseline --db study.db
  emu-video juice serve --db study.db --port 8000            # send each rater their link
  emu-video juice report --db study.db --out study_report/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    sub = parser.add_subparsers(dest="juice_command", metavar="{create,serve,report}", required=True)

    c = sub.add_parser(
        "create",
        help="build a study from two folders of generated videos",
        description="Match samples of system a and b by prompt (the <stem>.json files the "
        "sampler writes next to <stem>.mp4) and write a new study database.",
    )
    c.add_argument("--a", required=True, metavar="DIR", help="folder of system a's samples (searched recursively)")
    c.add_argument("--b", required=True, metavar="DIR", help="folder of system b's samples")
    c.add_argument("--db", required=True, metavar="FILE", help="new SQLite file to create (must not exist)")
    c.add_argument("--prompts", metavar="FILE", help="only use these prompts (one per line)")
    c.add_argument("--raters-per-pair", type=int, default=5, help="votes per pair; majority decides (default 5)")
    c.add_argument(
        "--raters",
        type=int,
        default=None,
        help="number of rater links (default: --raters-per-pair, so every rater sees every pair)",
    )
    c.add_argument("--names", nargs=2, default=("A", "B"), metavar=("A", "B"), help="system names in reports")
    c.add_argument("--seed", type=int, default=0, help="seed for pair order and left/right sides")
    c.add_argument("--no-tie", dest="allow_tie", action="store_false", help="raters must pick a side (no 'tie')")
    c.add_argument("--host", default="127.0.0.1", help="host to print in rater links (default 127.0.0.1)")
    c.add_argument("--port", type=int, default=8000, help="port to print in rater links (default 8000)")
    c.add_argument(
        "--public-url",
        default=None,
        metavar="URL",
        help="base URL raters open (e.g. https://eval.example.org); overrides --host / --port in links",
    )

    s = sub.add_parser(
        "serve",
        help="serve the rating page for a study",
        description="Serve the study to raters; each rater opens http://HOST:PORT/r/<token>.",
    )
    s.add_argument("--db", required=True, metavar="FILE", help="study database from `juice create`")
    s.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    s.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 for a LAN; default 127.0.0.1)")
    s.add_argument(
        "--public-url",
        default=None,
        metavar="URL",
        help="base URL raters open, printed in the links (e.g. behind a proxy); default: from --host, "
        "or this machine's name for 0.0.0.0",
    )

    r = sub.add_parser(
        "report",
        help="win rates, CIs, reasons and agreement for a study",
        description="Print the report; with --out also write report.txt/json, votes.csv, pairs.csv and win_rates.png.",
    )
    r.add_argument("--db", required=True, metavar="FILE", help="study database")
    r.add_argument("--out", metavar="DIR", help="folder for report files (created if missing)")


def _check_port(port: int, allow_zero: bool = False) -> None:
    if not (0 if allow_zero else 1) <= port <= 65535:
        raise ValueError(f"--port must be in {0 if allow_zero else 1}..65535, got {port}")


def _create(args) -> int:
    from emu_jax.juice.study import base_url, create_study, rater_links, read_prompts

    _check_port(args.port)
    _, note = base_url(args.host, args.port, args.public_url)  # a bad --public-url before the db is written
    for flag, folder in (("--a", args.a), ("--b", args.b)):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{flag} {folder!r} is not a directory")
    prompts = read_prompts(args.prompts) if args.prompts else None
    summary = create_study(
        args.db,
        args.a,
        args.b,
        raters_per_pair=args.raters_per_pair,
        n_raters=args.raters,
        names=tuple(args.names),
        prompts=prompts,
        seed=args.seed,
        allow_tie=args.allow_tie,
    )
    for label, items in (
        ("unmatched in --a", summary.unmatched_a),
        ("unmatched in --b", summary.unmatched_b),
        ("prompts from --prompts without a pair", summary.missing_prompts),
        ("skipped files", summary.skipped),
    ):
        if items:
            print(f"{label} ({len(items)}):", file=sys.stderr)
            for it in items:
                print(f"  {it}", file=sys.stderr)
    print(
        f"created {args.db}: {summary.n_pairs} pairs, {len(summary.tokens)} raters, "
        f"{args.raters_per_pair} votes per pair"
    )
    print("rater links (send one to each rater; start the server with `emu-video juice serve`):")
    for link in rater_links(summary.tokens, args.host, args.port, args.public_url):
        print(f"  {link}")
    if note:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _serve(args) -> int:
    from werkzeug.serving import make_server

    from emu_jax.juice import db
    from emu_jax.juice.app import create_app
    from emu_jax.juice.study import base_url, rater_links

    _check_port(args.port, allow_zero=True)
    base_url(args.host, args.port, args.public_url)  # a bad --public-url before binding
    app = create_app(args.db)
    conn = db.connect(args.db)
    try:
        tokens = [r["token"] for r in db.raters(conn)]
    finally:
        conn.close()
    try:
        server = make_server(args.host, args.port, app, threaded=True)
    except OSError as e:  # port in use, address not on this machine, no permission for a low port
        raise UserError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from e
    base, note = base_url(args.host, server.server_port, args.public_url)
    print(
        f"serving {args.db} on {base}/ (listening on {args.host}:{server.server_port}; Ctrl-C to stop); rater links:",
        flush=True,
    )
    for link in rater_links(tokens, args.host, server.server_port, args.public_url):
        print(f"  {link}", flush=True)
    if note:
        print(f"note: {note}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def _report(args) -> int:
    from emu_jax.juice.report import format_report, write_report

    rep = write_report(args.db, args.out)
    print(format_report(rep))
    if args.out:
        print(f"\nwrote report.txt, report.json, votes.csv, pairs.csv, win_rates.png to {args.out}")
    return 0


def main(args: argparse.Namespace) -> int:
    handlers = {"create": _create, "serve": _serve, "report": _report}
    try:
        return handlers[args.juice_command](args)
    except (ValueError, OSError) as e:  # study, db and file errors are all the user's to fix
        print(f"emu-video juice {args.juice_command}: error: {one_line(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="emu-video juice", description=__doc__.splitlines()[0])
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
