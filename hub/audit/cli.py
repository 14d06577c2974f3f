"""``hub audit``: verify the trail, destroy expired records, keep declarations and legal holds."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

import typer

from hub.audit.holds import HoldCriteria, add_hold, list_holds, release_hold
from hub.audit.pseudonym import Pseudonymiser
from hub.audit.purge import declarations, purge
from hub.audit.retention import configuration_problems
from hub.audit.store import AuditStore
from hub.audit.verify import verify
from hub.cli_options import ConfigOption, fail, load_settings
from hub.errors import HubError
from hub.settings import Settings

audit_app = typer.Typer(help="The audit trail (Logboek Dataverwerkingen).", no_args_is_help=True)
hold_app = typer.Typer(help="Legal holds, which block destruction.", no_args_is_help=True)
audit_app.add_typer(hold_app, name="hold")


def _store(settings: Settings) -> AuditStore:
    try:
        return AuditStore.open(settings.audit.database_url or settings.database_url)
    except HubError as exc:
        raise fail(exc.detail) from exc


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=_iso)


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    raise TypeError(f"{type(value).__name__} is not JSON")


def _moment(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is no date or date-time", param_hint=option) from None
    if moment.tzinfo is None:
        raise typer.BadParameter("a date-time needs its time zone (Z or an offset)", param_hint=option)
    return moment


@audit_app.command("verify")
def verify_command(config: ConfigOption = None) -> None:
    """Check every record, caller identity and declaration against the hash chain."""
    with _store(load_settings(config)) as store:
        found = verify(store)
    if found.intact:
        typer.echo(f"audit trail intact: {found.summary()}")
        return
    for problem in found.problems:
        typer.echo(problem, err=True)
    raise fail(f"audit trail NOT intact: {len(found.problems)} problem(s); {found.summary()}")


@audit_app.command("purge")
def purge_command(
    config: ConfigOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what is due; destroy nothing")] = False,
) -> None:
    """Destroy records past their activity's retention, except those under a legal hold."""
    settings = load_settings(config)
    for problem in configuration_problems(settings):
        typer.secho(f"warning: {problem}", fg=typer.colors.YELLOW, err=True)
    with _store(settings) as store:
        report = purge(store, settings, dry_run=dry_run)
    verb = "would destroy" if dry_run else "destroyed"
    for done in report.destructions:
        line = (
            f"{done.activity_id} ({done.category}, {done.retention}): {verb} {done.record_count} "
            f"record(s) that ended before {_iso(done.cutoff)}; {done.held_count} kept by legal holds"
        )
        if done.declaration is not None:
            line += f"; declaration {done.declaration['id']}"
        typer.echo(line)
    for activity_id, count in sorted(report.unknown_activities.items()):
        typer.secho(
            f"warning: kept {count} record(s) of activity {activity_id!r}, whose retention is unknown",
            fg=typer.colors.YELLOW,
            err=True,
        )
    if not report.destructions:
        typer.echo("nothing is due for destruction")


@audit_app.command("declarations")
def declarations_command(config: ConfigOption = None) -> None:
    """Print every kept declaration of destruction as JSON."""
    with _store(load_settings(config)) as store:
        typer.echo(_json(declarations(store)))


@hold_app.command("add")
def hold_add(
    reason: Annotated[str, typer.Option("--reason", help="Why the records must be kept")],
    config: ConfigOption = None,
    activity: Annotated[str | None, typer.Option("--activity", help="Processing activity id")] = None,
    data_subject: Annotated[
        str | None, typer.Option("--data-subject", help="Data subject id in clear (stored pseudonymised)")
    ] = None,
    trace_id: Annotated[str | None, typer.Option("--trace-id", help="32 hex digits")] = None,
    from_time: Annotated[str | None, typer.Option("--from", help="Processings ended since")] = None,
    until_time: Annotated[str | None, typer.Option("--until", help="Processings started by")] = None,
) -> None:
    """Place a legal hold: matching records, and the rest of their traces, are not destroyed."""
    settings = load_settings(config)
    if trace_id is not None and not re.fullmatch(r"[0-9a-f]{32}", trace_id):
        raise typer.BadParameter("a trace id is 32 lower-case hex digits", param_hint="--trace-id")
    pseudonym = None
    if data_subject is not None:
        try:
            pseudonym = Pseudonymiser.from_environment(settings.audit.pseudonym_key_env).pseudonym(
                data_subject.strip()
            )
        except HubError as exc:
            raise fail(f"{exc.detail} (set {settings.audit.pseudonym_key_env})") from exc
    criteria = HoldCriteria(
        activity_id=activity,
        data_subject_id=pseudonym,
        trace_id=trace_id,
        from_time=_moment(from_time, "--from"),
        until_time=_moment(until_time, "--until"),
    )
    with _store(settings) as store:
        try:
            hold_id = add_hold(store, reason, criteria)
        except HubError as exc:
            raise fail(exc.detail) from exc
    typer.echo(f"legal hold {hold_id} in force")


@hold_app.command("remove")
def hold_remove(
    hold_id: Annotated[int, typer.Argument(help="Id of the hold")], config: ConfigOption = None
) -> None:
    """Release a legal hold (it stays listed with its release time)."""
    with _store(load_settings(config)) as store:
        try:
            release_hold(store, hold_id)
        except HubError as exc:
            raise fail(exc.detail) from exc
    typer.echo(f"legal hold {hold_id} released")


@hold_app.command("list")
def hold_list(
    config: ConfigOption = None,
    released: Annotated[bool, typer.Option("--all", help="Include released holds")] = False,
) -> None:
    """Print the legal holds in force (with --all, released ones too) as JSON."""
    with _store(load_settings(config)) as store:
        typer.echo(_json(list_holds(store, released=released)))
