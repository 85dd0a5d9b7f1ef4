"""The leaf of the import graph: errors, the registry, and the small types every other package shares (the agent,
replay, env and callback protocols the loop is written against). Imports nothing of the project."""
