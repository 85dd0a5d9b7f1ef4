"""The conservative term of CQL (Kumar et al. 2020) in the form Dopamine's offline agents add it
(``dopamine/labs/offline_rl/jax/offline_rainbow_agent.py``: ``bc_loss``): the batch mean of
logsumexp_a Q(s, a) − Q(s, a_data), with Q the expected value of a C51 head. The loss is
``TD + α · this``; α = 0 is the plain agent.
"""

from __future__ import annotations

import torch


def cql_penalty(q_values: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """``q_values`` (B, actions), ``actions`` (B,) the dataset's: pushes Q down everywhere and up on the data."""
    taken = q_values.gather(1, actions.unsqueeze(1)).squeeze(1)
    return (torch.logsumexp(q_values, dim=1) - taken).mean()
