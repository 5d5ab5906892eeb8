import sys

from bortconv.cli import main

sys.exit(main())
