"""What `rrd` start-up may not load: the stage libraries, checked by what a child interpreter holds in `sys.modules`."""

from __future__ import annotations

HEAVY = ("datasets", "pyarrow", "duckdb", "openai", "aiohttp", "starlette", "uvicorn", "pandas", "numpy", "PIL")
