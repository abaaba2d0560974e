import sys

from catdog.training.process import main

sys.exit(main(sys.argv[1]))
