"""`python -m streamproc` runs the CLI."""

import sys

from streamproc.cli.main import main

sys.exit(main())
