import sys

from phi_lsp.cli import main

sys.exit(main())
