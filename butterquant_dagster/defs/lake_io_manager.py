"""The IO manager between Dagster assets and the Parquet lake.

Partitioned assets store one file per session. An asset that stages its partitions itself
(to check them before anyone can read them) hands over :class:`StagedPartitions`, which are
published here; a plain DataFrame with a ``session`` column is split by session and written
the same way. Either way a run's partitions appear together or not at all.
"""

from __future__ import annotations

import pandas as pd
from dagster import ConfigurableIOManager, InputContext, MetadataValue, OutputContext

from butterquant_dagster.core.storage.lake import Lake, LakeError, StagedPartitions
from butterquant_dagster.resources import LakeResource


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
            context.add_output_metadata({"path": MetadataValue.path(str(path))})
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
            }
        )

    @staticmethod
    def _stage_frame(lake: Lake, table: str, frame, keys: list[str]) -> StagedPartitions:
        if not isinstance(frame, pd.DataFrame) or "session" not in frame.columns:
            raise LakeError(f"{table}: a partitioned output must be a frame with a session column")
        labels = pd.to_datetime(frame["session"]).dt.strftime("%Y-%m-%d")
        staged = lake.stage(table)
        try:
            for key in keys:
                # An empty partition is a real answer (every ticker skipped) and is stored
                # with its columns, so readers see the schema.
                staged.write(key, frame.loc[labels == key].reset_index(drop=True))
            stray = sorted(set(labels) - set(keys))
            if stray:
                raise LakeError(f"{table}: rows dated outside the run's partitions: {stray[:5]}")
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
