"""`python -m app.cli` runs the `medview` command."""

from app.cli import main

raise SystemExit(main())
