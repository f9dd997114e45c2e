"""The `kbot` command line (typer): knowledge and asking in main.py, the learning loop in training.py."""
