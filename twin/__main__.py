"""`python -m twin` runs the CLI."""

from twin.cli import app

app(prog_name="twin")
