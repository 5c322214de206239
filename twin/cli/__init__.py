"""The ``twin`` command. Thin: parse, call the domain, print (``--json`` for machines).

One module per command group; this one only puts them together.
"""

from __future__ import annotations

import typer

from twin.cli.alerts import alerts_app
from twin.cli.city import city_app
from twin.cli.db import db_app
from twin.cli.demo import demo
from twin.cli.export import export as export_command
from twin.cli.grid import grid_app
from twin.cli.ingest import ingest_app
from twin.cli.nowcast import nowcast_app
from twin.cli.report import report as report_command
from twin.cli.review import review as review_command
from twin.cli.risk import risk_app
from twin.cli.sense import sense_app
from twin.cli.serve import serve as serve_command
from twin.cli.simulate import flood_app, simulate_app, traffic_app
from twin.cli.tasks import tasks_app
from twin.cli.tiles import tiles_app
from twin.cli.users import audit_command, users_app

app = typer.Typer(
    name="twin",
    help="City digital twin: a PostGIS city model on H3 cells, tiles, risk and simulations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db_app, name="db")
app.add_typer(flood_app, name="flood")
app.add_typer(simulate_app, name="simulate")
app.add_typer(traffic_app, name="traffic")
app.add_typer(risk_app, name="risk")
app.add_typer(alerts_app, name="alerts")
app.add_typer(tasks_app, name="tasks")
app.add_typer(users_app, name="users")
app.add_typer(ingest_app, name="ingest")
app.add_typer(city_app, name="city")
app.add_typer(tiles_app, name="tiles")
app.add_typer(grid_app, name="grid")
app.add_typer(sense_app, name="sense")
app.add_typer(nowcast_app, name="nowcast")
app.command("audit")(audit_command)
app.command("report")(report_command)
app.command("review")(review_command)
app.command("export")(export_command)
app.command("serve")(serve_command)
app.command("demo")(demo)


@app.command("version")
def version() -> None:
    """Print the package version."""
    import twin

    typer.echo(twin.__version__)
