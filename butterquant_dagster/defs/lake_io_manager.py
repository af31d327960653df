"""The IO manager between Dagster assets and the Parquet lake.

Partitioned assets store one file per session. An asset that stages its partitions itself
(to check them before anyone can read them) hands over :class:`StagedPartitions`, which are
published here; a plain DataFrame with a ``session`` column is split by session and written
the same way. Either way a run's partitions appear together or not at all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from dagster import ConfigurableIOManager, InputContext, MetadataValue, OutputContext

from butterquant_dagster.core.storage.lake import Lake, LakeError, StagedPartitions
from butterquant_dagster.defs.metadata import stored_column_schema
from butterquant_dagster.resources import LakeResource


def session_days(sessions: pd.Series) -> np.ndarray:
    """Each row's session as ``datetime64[D]`` (a time zone's wall date when aware)."""
    stamps = pd.to_datetime(sessions)
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = stamps.dt.tz_localize(None)
    return stamps.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")


def split_by_session(frame: pd.DataFrame, keys: list[str]) -> dict:
    """``frame``'s rows by session: key -> its rows in their order (an empty frame with the
    columns when it has none), and under ``None`` the sorted labels of sessions outside
    ``keys`` (``NaT`` for a missing one), when there are any.

    Vectorized: one stable sort of the sessions as integers and a slice per key, never a
    Python step per row (a 500-ticker session has ~250k rows).
    """
    days = session_days(frame["session"])
    wanted = np.array(keys, dtype="datetime64[D]")
    order = np.argsort(days, kind="stable")
    ordered = days[order]
    present = np.unique(ordered)  # NaT sorts last
    outside = present[np.isnat(present) | ~np.isin(present, wanted)]
    parts: dict = {}
    if len(outside):
        parts[None] = [str(day) for day in outside]
    if len(keys) == 1 and len(present) == 1 and present[0] == wanted[0]:
        parts[keys[0]] = frame.reset_index(drop=True)  # every row is the one session's
        return parts
    starts = np.searchsorted(ordered, wanted, side="left")
    ends = np.searchsorted(ordered, wanted, side="right")
    for key, start, end in zip(keys, starts, ends, strict=True):
        parts[key] = frame.take(order[start:end]).reset_index(drop=True)
    return parts


def _table(context: OutputContext | InputContext) -> str:
    return context.asset_key.path[-1]


class LakeIOManager(ConfigurableIOManager):
    lake: LakeResource

    def _lake(self) -> Lake:
        return self.lake.lake()

    def handle_output(self, context: OutputContext, obj) -> None:
        lake = self._lake()
        table = _table(context)
        if not context.has_asset_partitions:
            if not isinstance(obj, pd.DataFrame):
                raise LakeError(f"{table}: expected a DataFrame, got {type(obj).__name__}")
            path = lake.write(table, obj)
            context.add_output_metadata(
                {"path": MetadataValue.path(str(path)), **stored_column_schema(table, path)}
            )
            return
        keys = list(context.asset_partition_keys)
        staged = (
            obj if isinstance(obj, StagedPartitions) else self._stage_frame(lake, table, obj, keys)
        )
        missing = sorted(set(keys) - set(staged.partitions))
        extra = sorted(set(staged.partitions) - set(keys))
        if missing or extra:
            staged.discard()
            raise LakeError(
                f"{table}: the run was for partitions {keys[0]}..{keys[-1]} but produced "
                f"{len(staged.partitions)}; missing {missing[:5]}, unexpected {extra[:5]}"
            )
        paths = staged.publish()
        context.add_output_metadata(
            {
                "partitions_written": len(paths),
                "path": MetadataValue.path(str(paths[-1].parent)) if paths else "",
                **(stored_column_schema(table, paths[-1]) if paths else {}),
            }
        )

    @staticmethod
    def _stage_frame(lake: Lake, table: str, frame, keys: list[str]) -> StagedPartitions:
        if not isinstance(frame, pd.DataFrame) or "session" not in frame.columns:
            raise LakeError(f"{table}: a partitioned output must be a frame with a session column")
        parts = split_by_session(frame, keys)
        stray = parts.pop(None, None)
        if stray is not None:
            raise LakeError(f"{table}: rows dated outside the run's partitions: {stray[:5]}")
        staged = lake.stage(table)
        try:
            for key in keys:
                # An empty partition is a real answer (every ticker skipped) and is stored
                # with its columns, so readers see the schema.
                staged.write(key, parts[key])
        except Exception:
            staged.discard()
            raise
        return staged

    def load_input(self, context: InputContext) -> pd.DataFrame:
        lake = self._lake()
        table = _table(context)
        if context.has_asset_partitions:
            return lake.read(table, context.asset_partition_keys)
        return lake.read(table)
