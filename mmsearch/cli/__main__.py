"""`python -m mmsearch.cli`: the same as the `mmsearch` command."""

import sys

from mmsearch.cli import main

sys.exit(main())
