import sys

from vloom.cli import main

sys.exit(main())
