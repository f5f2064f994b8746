import sys

from mvr.cli import main

sys.exit(main())
