"""`python -m ccengine.cli ...`: the same as the `ccengine` command."""
import sys

from ccengine.cli import main

sys.exit(main())
