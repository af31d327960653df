"""``butterquant execute [--date D] [--dry-run]``: trade one session through Dagster (plan,
reconcile, send, collect fills, mark, journal) and print its targets, orders and fills, and
what this run sent: on a session already traded, that it sent nothing new and why."""

from __future__ import annotations

from butterquant_dagster.commands._data import lake, trading
from butterquant_dagster.commands._errors import EXIT_OK
from butterquant_dagster.commands._output import emit, report_failure
from butterquant_dagster.commands._trading import (
    execute_session_run,
    run_asset_metadata,
    sending_outcome,
    trading_session,
)


def add_parser(sub) -> None:
    execute = sub.add_parser(
        "execute",
        help="trade one session: plan, reconcile, send, collect fills, mark, journal",
        description="Run the execution job for one session on the configured broker (the "
        "paper broker by default). A past session is replayed at its decision time.",
    )
    execute.add_argument("--date", help="session, YYYY-MM-DD (default: today's session)")
    execute.add_argument(
        "--dry-run", action="store_true", help="plan the orders and print them; send nothing"
    )
    execute.add_argument("--json", action="store_true", help="print the result as JSON")
    execute.set_defaults(handler=cmd_execute)


def cmd_execute(args) -> int:
    day = trading_session(args.date)
    summary = execute_session_run(day, dry_run=args.dry_run, show=not args.json)
    if not summary.success:
        return report_failure(summary, args.json)
    targets = lake().read_existing("target_orders", [day.isoformat()])
    ledger = trading().ledger()
    orders = ledger.orders(day) if not args.dry_run else targets.iloc[0:0]
    fills = ledger.fills(day) if not args.dry_run else targets.iloc[0:0]
    result = {
        "session": day.isoformat(),
        "dry_run": args.dry_run,
        "targets": targets.to_dict(orient="records"),
        "orders": orders.to_dict(orient="records"),
        "fills": fills.to_dict(orient="records"),
        "run_id": summary.run_id,
    }
    if not args.dry_run:
        metadata = run_asset_metadata(summary.run_id)
        sent, already, note = sending_outcome(
            metadata.get("orders", {}), metadata.get("target_orders", {}), len(targets)
        )
        result.update({"sent": sent, "already_sent": already, "note": note})
    lines = [f"butterquant execute {day}" + (" (dry run: nothing sent)" if args.dry_run else "")]
    lines.append(f"  targets: {len(targets)}")
    for row in targets.itertuples(index=False):
        lines.append(
            f"    {row.intent:6} {row.track:8} {row.ticker:6} {row.structure:9} x{row.quantity} "
            f"@ {row.limit_price:+.2f}  {row.reason}"
        )
    if not args.dry_run:
        counts = orders["status"].value_counts().to_dict() if len(orders) else {}
        lines.append(f"  orders:  {len(orders)} {counts}")
        for row in orders.loc[orders["status"] == "blocked"].itertuples(index=False):
            lines.append(f"    blocked {row.ticker}: {row.status_reason}")
        lines.append(f"  fills:   {len(fills)}")
        lines.append(f"  {result['note']}")
    emit(result, args.json, lines)
    return EXIT_OK
