"""Entry point of `python -m golem_actor.discovery`."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
