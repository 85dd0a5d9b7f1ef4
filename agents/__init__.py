"""Agents, their network builders and replay. Nothing here knows about pruning."""


def make_agent(cfg, obs_shape: tuple[int, ...], action_space, rng, device):
    """Build ``cfg.agent.name`` with the network ``cfg.network`` for this observation and action space."""
    if cfg.agent.name == "dqn":
        from agents.dqn import DQN

        return DQN(cfg.agent, cfg.network, obs_shape, int(action_space.n), rng, device)
    if cfg.agent.name == "rainbow":
        from agents.rainbow import Rainbow

        return Rainbow(cfg.agent, cfg.network, obs_shape, int(action_space.n), rng, device)
    if cfg.agent.name == "sac":
        from agents.sac import SAC

        return SAC(cfg.agent, cfg.network, obs_shape, int(action_space.shape[0]), rng, device)
    raise ValueError(f"unknown agent {cfg.agent.name!r}")
