import sys

from catdog.runs.store import RunStore

RunStore(sys.argv[1]).serve_queue()
