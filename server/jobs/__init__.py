"""Job engine: a persistent job store, executors that run jobs, and the service joining them."""
