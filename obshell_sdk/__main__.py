"""``python -m obshell_sdk``: the command line (see ``obshell_sdk._cli``)."""

import sys

from ._cli import main

sys.exit(main())
