"""Partitions: a dynamic ``campaign`` dimension and a static ``format`` dimension from the catalog.

Stages 1-4 are partitioned by campaign, stages 5-6 by campaign x format. Multi-partition key
strings join dimensions in alphabetical order of dimension name: ``<campaign>|<format>``.
"""

import dagster as dg

from media_routes.formats import FORMAT_KEYS

campaign_partitions = dg.DynamicPartitionsDefinition(name="campaign")
format_partitions = dg.StaticPartitionsDefinition(FORMAT_KEYS)
campaign_x_format_partitions = dg.MultiPartitionsDefinition(
    {"campaign": campaign_partitions, "format": format_partitions}
)


def campaign_format_key(campaign: str, fmt: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"campaign": campaign, "format": fmt})


def split_campaign_format(key: str) -> tuple[str, str]:
    """'campaign|format' back into its parts (Dagster joins dimensions in alphabetical order of their names)."""
    campaign, fmt = key.split("|", 1)
    return campaign, fmt
