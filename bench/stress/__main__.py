"""``python -m bench.stress``: see bench/stress/__init__.py and bench/README.md."""

from __future__ import annotations

import sys

from bench.stress.run import main

sys.exit(main())
