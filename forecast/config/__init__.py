"""The config: its typed schema, the YAML file and `--set`, one-line error wording."""
