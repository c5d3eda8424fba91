"""``python -m circuits``: the ``emocircuits`` command line."""

from circuits.cli import main

raise SystemExit(main())
