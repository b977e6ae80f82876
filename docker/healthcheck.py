"""The images' HEALTHCHECK: exit 0 when GET /api/health answers 200 inside the container.

Reads the port from `PSGD_PLAYGROUND_PORT` (default 8000) and always asks 127.0.0.1, so it
works whatever interface the server binds to. Standard library only (no curl in the image).
"""

from __future__ import annotations

import os
import sys
import urllib.request

HEALTH_PATH = "/api/health"


def main() -> int:
    port = os.environ.get("PSGD_PLAYGROUND_PORT") or "8000"
    url = f"http://127.0.0.1:{port}{HEALTH_PATH}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            status = response.status
    except OSError as e:  # refused, timed out, or an HTTP error status (HTTPError)
        print(f"unhealthy: {url}: {e}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
