import sys

from dftlab.study.cli import main

sys.exit(main())
