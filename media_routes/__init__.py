"""media_routes: a generative-media production line on Dagster."""

import warnings

# colour-science announces optional plotting support at import; we never plot.
warnings.filterwarnings("ignore", message='"Matplotlib" related API features are not available')

__version__ = "0.1.0"
# Output(data_version=...) is marked beta in Dagster 1.13 but is the documented way to give every
# stage a content-hash data version (see docs/architecture.md); do not repeat the notice per run.
warnings.filterwarnings("ignore", message="Parameter `data_version` of initializer `Output.__init__`")
