"""Partitions: a dynamic ``campaign`` dimension and a static ``format`` dimension from the catalog.

Stages 1-4 are partitioned by campaign, stages 5-6 by campaign x format. Multi-partition key
strings join dimensions in alphabetical order of dimension name: ``<campaign>|<format>``.
"""

import dagster as dg

from media_routes.formats import FORMAT_KEYS
from media_routes.stages import CAMPAIGN_DIMENSION, FORMAT_DIMENSION, get_stage

campaign_partitions = dg.DynamicPartitionsDefinition(name=CAMPAIGN_DIMENSION)
format_partitions = dg.StaticPartitionsDefinition(FORMAT_KEYS)
campaign_x_format_partitions = dg.MultiPartitionsDefinition(
    {CAMPAIGN_DIMENSION: campaign_partitions, FORMAT_DIMENSION: format_partitions}
)


def stage_partitions(stage: str) -> dg.PartitionsDefinition:
    """The partitions of a stage, as declared in media_routes/stages.py."""
    return campaign_x_format_partitions if get_stage(stage).per_format else campaign_partitions


def multi_partition_key(campaign: str, fmt: str) -> dg.MultiPartitionKey:
    """The key object Dagster's APIs take; ``str()`` of it is ``stages.campaign_format_key``."""
    return dg.MultiPartitionKey({CAMPAIGN_DIMENSION: campaign, FORMAT_DIMENSION: fmt})
