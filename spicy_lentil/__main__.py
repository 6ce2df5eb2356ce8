"""`python -m spicy_lentil`: the command line (`spicy-lentil`)."""

import sys

from .frontends.cli import main

sys.exit(main())
