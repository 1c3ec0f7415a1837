"""``python -m obshell_sdk.testing``: serve a fake obshell agent (see ``_shell``)."""

import sys

from ._shell import main

sys.exit(main())
