"""The Typer shell: parse options, call forecast.api, print tables, map errors to exit codes."""
