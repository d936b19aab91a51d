"""``python -m shred``: the same as the ``shred-ir`` command."""
import sys

from .cli import main

sys.exit(main())
