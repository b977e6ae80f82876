"""The headless Chromium this machine's browser tests and benchmarks drive: the distribution's
binary (never `playwright install`), with flags that keep it off the network and quiet."""

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
