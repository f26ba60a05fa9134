"""What `vault restore` prints: the plan of a dry run, the report of a restore, for humans
and for --json."""

from __future__ import annotations

from typing import Any

from vault.cli.output import Output
from vault.foundation.units import human_bytes
from vault.operations.restore import RestoreOutcome
from vault.operations.restore_checks import warning_text
from vault.planning.restore_plan import RestorePlan
from vault.restore.report import COUNTS, RestoreReport


def plan_record(outcome: RestoreOutcome) -> dict[str, Any] | None:
    """The plan as a JSON record: a files plan without its items, a database's whole (as
    its source reported it: none for a whole swap)."""
    return outcome.plan_json(items=outcome.applied.files is None)


def say_warnings(out: Output, warnings: list[dict[str, Any]]) -> None:
    for record in warnings:
        out.info(f"warning: {warning_text(record)}")


def render_files(out: Output, outcome: RestoreOutcome, *, verbose: bool,
                 undo: str | None = None) -> None:
    """A files restore: the plan (dry run) or the report (real restore)."""
    req, st, plan, report = outcome.request, outcome.stats, outcome.plan, outcome.report
    assert plan is not None and report is not None
    for p in st.problems:
        out.info(f"warning: {p.path}: {p.error}")
    say_warnings(out, outcome.warnings)
    verb = "would restore" if req.dry_run else "restored"
    deleted = plan.totals()["delete"] if req.dry_run else len(st.deleted)
    out.line(f"{verb} {st.files_restored} files, {st.dirs} dirs, {st.symlinks} symlinks "
             f"({human_bytes(st.bytes_written)}) from snapshot {outcome.snapshot.short_id} "
             f"to {req.target}; {st.files_skipped} skipped, {deleted} deleted, "
             f"{len(st.problems)} problems"
             + ("" if req.dry_run else f", {outcome.duration_seconds:.1f}s"))
    out.line(f"mode {plan.mode}, on conflict {plan.on_conflict}")
    if req.dry_run:
        _render_plan(out, plan, verbose=verbose)
    else:
        _render_report(out, report)
    if undo:
        out.line(f"a safety copy was kept; undo with: {undo}")
    out.summary(undo=undo, job_id=outcome.job_id, snapshot_id=outcome.snapshot.id,
                target=req.target, dry_run=req.dry_run, files_restored=st.files_restored,
                files_skipped=st.files_skipped, dirs=st.dirs, symlinks=st.symlinks,
                bytes_written=st.bytes_written, duration_seconds=outcome.duration_seconds,
                problems=[{"path": p.path, "error": p.error} for p in st.problems],
                plan=plan.to_json(), report=report.to_json(),
                created=st.created, overwritten=st.overwritten, deleted=st.deleted,
                warnings=outcome.warnings)


def _render_plan(out: Output, plan: RestorePlan, *, verbose: bool) -> None:
    totals = {a: n for a, n in plan.totals().items() if n}
    out.line("plan: " + (", ".join(f"{a} {n}" for a, n in totals.items()) or "nothing")
             + f"; {human_bytes(plan.bytes_to_write)} to write")
    for group, counts in plan.by_group().items():
        out.line(f"  {group}: " + ", ".join(f"{a} {n}" for a, n in counts.items()))
    if verbose:
        for item in plan.items:
            out.line(f"    {item.action:<9} {item.key}  ({item.reason})")
    if plan.conflicts:
        out.line(f"{len(plan.conflicts)} conflict(s): the restore would be refused "
                 "(--on-conflict fail)")


def _render_report(out: Output, report: RestoreReport) -> None:
    rows = [[group, *(str(counts[c]) for c in COUNTS)]
            for group, counts in report.groups.items()]
    rows.append(["total", *(str(report.totals[c]) for c in COUNTS)])
    out.table(["directory", *COUNTS], rows)


def _render_source_plan(out: Output, plan: dict[str, Any], verbose: bool) -> None:
    """A database restore's plan (RestorePlan.to_json()): totals, then per table or
    collection, and with -v every record."""
    totals = {a: n for a, n in plan.get("totals", {}).items() if n}
    out.line(f"plan ({plan.get('mode')}, on conflict {plan.get('on_conflict')}): "
             + (", ".join(f"{a} {n}" for a, n in totals.items()) or "nothing to do"))
    for group, counts in plan.get("groups", {}).items():
        out.line(f"  {group}: " + ", ".join(f"{a} {n}" for a, n in counts.items()))
    verb = "written" if plan.get("mode") == "new-target" else "replaced"
    for group, why in (plan.get("whole") or {}).items():
        out.line(f"  {group}: {verb} whole, not row by row: {why}")
    if verbose:
        for item in plan.get("items", []):
            out.line(f"    {item['action']:<9} {item['group']} {item['key']}  ({item['reason']})")


def render_source(out: Output, outcome: RestoreOutcome, *, verbose: bool,
                  undo: str | None = None) -> None:
    """A database or settings restore: its plan, then what it wrote."""
    req, snap, r = outcome.request, outcome.snapshot, outcome.result
    kind = snap.source.get("type")
    say_warnings(out, outcome.warnings)
    plan = plan_record(outcome)
    if plan is not None:
        _render_source_plan(out, plan, verbose)
    if req.dry_run:
        out.summary(snapshot_id=snap.id, source_type=kind, target=req.target, dry_run=True,
                    plan=plan, warnings=outcome.warnings)
        return
    if undo:
        out.line(f"a safety copy was kept; undo with: {undo}")
    if r.details.get("id_map"):
        out.line("new ids: " + ", ".join(f"{group}: {len(ids)}"
                                         for group, ids in r.details["id_map"].items()))
    out.line(f"restored {kind} {snap.source.get('label')} from snapshot {snap.short_id} "
             f"to {req.target or 'its own location'}: {r.items} item(s), "
             f"{human_bytes(r.bytes)}, {outcome.duration_seconds:.1f}s")
    out.summary(job_id=outcome.job_id, snapshot_id=snap.id, source_type=kind, undo=undo,
                target=req.target, items=r.items, bytes_written=r.bytes,
                duration_seconds=outcome.duration_seconds, details=r.details,
                warnings=outcome.warnings)
