"""The Slack adapter (Bolt): app.py builds and serves it; answers, feedback and admin hold handlers."""
