"""``twin tiles export`` and ``twin tiles viewer``: tile layers into a PMTiles archive and a
self-contained map page next to it, for static hosting."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import psycopg
import typer

from twin.cli.support import JsonOpt, emit, fail, load_settings
from twin.settings import Settings

tiles_app = typer.Typer(help="Vector tiles out of the twin.", no_args_is_help=True)
Opt = typer.Option


def parse_zooms(text: str) -> tuple[int, int]:
    """``'12-16'`` or ``'14'`` -> (min, max)."""
    try:
        lo, _, hi = text.partition("-")
        z = (int(lo), int(hi or lo))
    except ValueError:
        raise typer.BadParameter(f"{text!r}: use MIN-MAX, e.g. 12-16") from None
    return z


@tiles_app.command("export")
def export(
    out: Annotated[Path, Opt("--out", help="The archive to write (.pmtiles).")],
    layers: Annotated[
        str, Opt(help="Comma-separated tile layers (see /tiles/style.json).")
    ] = "buildings,roads,cells",
    zooms: Annotated[str, Opt(help="Zoom range, MIN-MAX.")] = "12-16",
    fmt: Annotated[str, Opt("--format", help="Archive format (pmtiles).")] = "pmtiles",
    clearance: Annotated[
        str, Opt(help="Highest data class to include: general (default) or important.")
    ] = "general",
    with_viewer: Annotated[
        bool, Opt("--with-viewer", help="Also write the static map page next to the archive.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write the public tiles over the city to a PMTiles v3 archive (MapLibre, static hosting)."""
    from rich.progress import Progress

    from twin.db.engine import DatabaseNotConfiguredError
    from twin.tiles.export import ExportError, export_pmtiles

    if fmt != "pmtiles":
        fail(f"--format {fmt!r}: only pmtiles is written", code=2)
    settings = load_settings()
    names = [n.strip() for n in layers.split(",") if n.strip()]
    try:
        with Progress(transient=True) as bar:
            task = bar.add_task("tiles", total=None)
            report = export_pmtiles(
                settings, out, layers=names, zooms=parse_zooms(zooms), clearance=clearance,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )  # fmt: skip
    except ExportError as exc:
        fail(str(exc), code=2)
    except (DatabaseNotConfiguredError, psycopg.OperationalError) as exc:
        fail(f"database: {exc}")
    d = report.as_dict()
    human = (f"{out}: {d['tiles']:,} tiles ({d['empty']:,} empty left out) of "
             f"{', '.join(d['layers'])} at zooms {zooms}, {d['bytes'] / 1e6:.1f} MB")  # fmt: skip
    if with_viewer:
        d["viewer"] = _viewer(settings, out)
        human += f"\nmap page: {d['viewer'][-1]} (serve the folder from any host with HTTP Range)"
    emit(d, as_json, human)


def _viewer(settings: Settings, archive: Path) -> list[str]:
    from twin.tiles.export import ExportError
    from twin.tiles.viewer import write_viewer

    try:
        return [str(p) for p in write_viewer(settings, archive)]
    except ExportError as exc:
        fail(str(exc), code=2)


@tiles_app.command("viewer")
def viewer(
    archive: Annotated[Path, typer.Argument(help="A PMTiles archive from `twin tiles export`.")],
    as_json: JsonOpt = False,
) -> None:
    """Write a self-contained map page (MapLibre + pmtiles, no server) next to ARCHIVE."""
    files = _viewer(load_settings(), archive)
    human = f"map page: {files[-1]} (serve {archive.parent} from any host with HTTP Range)"
    emit({"archive": str(archive), "files": files}, as_json, human)
