"""``python -m shred.cli``: the same as the ``shred-ir`` command."""
import sys

from . import main

sys.exit(main())
