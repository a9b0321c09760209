"""`python -m gan_jax.report DIR`: gan-report."""

import sys

from gan_jax.report import main

sys.exit(main(sys.argv[1:]))
