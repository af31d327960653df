"""How the daily routine's schedules and sensors start: running, out of the box.

A routine that must first be switched on in the UI is one that silently never happens: the
16:30 snapshot a new user waits for would never come. `BUTTERQUANT_AUTOMATION_DEFAULT=stopped`
starts them stopped instead (the UI's toggles override either afterwards); the watchers
(`health_watch`, `record_run_failures`, `clear_stale_runs`) always run. Orders are a
separate switch, `BUTTERQUANT_SEND_ORDERS`, read by the execution itself.
"""

from dagster import DefaultScheduleStatus, DefaultSensorStatus

from butterquant_dagster.core import settings

_RUNNING = settings.automation_running()

ROUTINE_SCHEDULE_STATUS = DefaultScheduleStatus("RUNNING" if _RUNNING else "STOPPED")
ROUTINE_SENSOR_STATUS = DefaultSensorStatus("RUNNING" if _RUNNING else "STOPPED")
