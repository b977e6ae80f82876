"""Shared test setup."""

import torch

# The math tests loop over tiny tensors, where extra threads only add overhead and make
# timings on a shared 2-core machine erratic.
torch.set_num_threads(1)
