import sys

from catdog.runs import queue
from catdog.runs.store import RunStore

queue.serve(RunStore(sys.argv[1]))
