"""`python -m kubedr`: the same as the `kubedr` command."""

import sys

from kubedr.commands.cli import main

sys.exit(main())
