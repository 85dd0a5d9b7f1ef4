"""Pruning and network-health measurement over any ``nn.Module`` in an agent's ``networks()``."""
