"""citepipe: harvest citation report pages into normalised rows."""

from __future__ import annotations

__version__ = "0.1.0"
