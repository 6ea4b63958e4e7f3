"""``python -m mio_strategies`` is the ``mio-strategies`` command."""

import sys

from mio_strategies.cli import main

sys.exit(main())
