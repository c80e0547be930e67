"""``python -m attest verify CHAIN.pem [...]``."""

import sys

from .cli import main

sys.exit(main())
