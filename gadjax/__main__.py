import sys

from gadjax.cli import main

sys.exit(main())
