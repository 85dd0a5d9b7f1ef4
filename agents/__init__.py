"""Agents, their network builders and replay. Each agent and network registers itself (``agents/registry.py``);
nothing here knows about pruning or adapters."""
