"""Create and list the service's API keys (each with a FLOPs budget).

Example:
  cs336-scaling keys create alice                 # prints the new key
  cs336-scaling keys create bob --budget 1e17
  cs336-scaling keys list
"""

from __future__ import annotations

import argparse

from cs336_common.cli import positive_float
from cs336_scaling.commands._common import add_state_dir, open_state


def add_arguments(parser):
    add_state_dir(parser)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="create a key and print it", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    create.add_argument("name", help="who the key is for (shown on the dashboard)")
    create.add_argument(
        "--budget",
        type=positive_float,
        default=None,
        help="FLOPs this key may spend (default: the server's budget, 2e18)",
    )
    sub.add_parser("list", help="keys with their names, budgets and FLOPs used")


def run(args):
    lock, store = open_state(args.state_dir, exclusive=False)
    with lock:
        if args.action == "create":
            print(store.create_key(args.name, args.budget))
            return 0
        for k in store.list_keys():
            budget = "default" if k["budget"] is None else f"{k['budget']:.3g}"
            print(f"{k['api_key']}  {k['name']:<16} used {k['used']:.3g}  budget {budget}")
    return 0
