"""The code location loads; asset keys, partitions, group, code versions and owners are as specified."""

from __future__ import annotations

import dagster as dg

from media_routes.definitions import defs
from media_routes.defs.partitions import campaign_partitions, campaign_x_format_partitions
from media_routes.formats import FORMAT_KEYS

STAGES = ["base_composition", "lighting_iteration", "inpaint_fix", "k_upscale", "aspect_outpaint", "motion"]


def test_definitions_load() -> None:
    dg.Definitions.validate_loadable(defs)


def test_asset_specs() -> None:
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == set(STAGES) | {f"campaign_spec/{s}" for s in STAGES}
    for stage in STAGES:
        # each stage reads its own slice of the spec, and the stage before it
        spec = graph.get(dg.AssetKey(["campaign_spec", stage]))
        assert spec.is_observable and spec.partitions_def == campaign_partitions
        assert spec.group_name == "campaign_specs"
        parents = {k.to_user_string() for k in graph.get(dg.AssetKey(stage)).parent_keys}
        previous = {STAGES[STAGES.index(stage) - 1]} if stage != STAGES[0] else set()
        assert parents == {f"campaign_spec/{stage}"} | previous, stage
        node = graph.get(dg.AssetKey(stage))
        assert node.group_name == "media_pipeline"
        assert node.code_version, stage
        assert node.owners == ["team:creative-ops"]
        assert node.kinds, stage
        assert node.description and len(node.description) > 80, stage
        expected = campaign_partitions if stage in STAGES[:4] else campaign_x_format_partitions
        assert node.partitions_def == expected, stage


def test_lineage_edges_and_inferred_partition_mapping() -> None:
    graph = defs.resolve_asset_graph()
    for up, down in zip(STAGES, STAGES[1:], strict=False):
        assert dg.AssetKey(up) in graph.get(dg.AssetKey(down)).parent_keys
    mapping = graph.get_partition_mapping(dg.AssetKey("aspect_outpaint"), dg.AssetKey("k_upscale"))
    assert isinstance(mapping, dg.MultiToSingleDimensionPartitionMapping)


def test_format_dimension_is_the_catalog() -> None:
    dims = {d.name: d.partitions_def for d in campaign_x_format_partitions.partitions_defs}
    assert dims["format"].get_partition_keys() == FORMAT_KEYS
    assert {"1x1", "4x5", "9x16", "16x9"} <= set(FORMAT_KEYS)
