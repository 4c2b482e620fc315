"""`python -m benchmarks`: accuracy and speed together (see `benchmarks.run`)."""

import sys

from benchmarks.run import main

sys.exit(main())
