"""`python -m asr`: see `asr.cli`."""

import sys

from .cli import main

sys.exit(main())
