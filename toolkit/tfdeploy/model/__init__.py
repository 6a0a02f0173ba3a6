"""The pure model: tag -> settings -> envs -> backend -> resolved Deployment. No I/O but reading config files."""
