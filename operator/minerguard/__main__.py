"""``python -m minerguard``: the same as the ``minerguard`` command."""

import sys

from minerguard.cli import main

sys.exit(main())
