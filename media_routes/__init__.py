"""media_routes: a generative-media production line on Dagster."""

import warnings

# colour-science announces optional plotting support at import; we never plot.
warnings.filterwarnings("ignore", message='"Matplotlib" related API features are not available')

__version__ = "0.1.0"
