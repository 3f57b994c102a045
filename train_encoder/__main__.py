"""``python -m train_encoder`` / ``accelerate launch -m train_encoder``: see :mod:`train_encoder.cli`."""

from .cli import main

raise SystemExit(main())
