"""The training loop's seams: the top-level config, the callback protocol, the logger and the run folder."""
