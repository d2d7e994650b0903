"""Zero to JupyterHub values.yaml -> podgate's config (or the chart's values), with a report.

`translate` reads the parsed values file and returns the podgate config and
a report line per z2jh key: carried over, changed (and why), or without a
counterpart. Python in hub.extraConfig is named, never interpreted. Bad input
raises Z2JHError with every problem found. Plain data: no I/O here but what
podgate.cli does.
"""

from control.z2jh.chart import chart_values
from control.z2jh.report import Line, Report, Z2JHError
from control.z2jh.translate import Translation, parse, translate

__all__ = ["Line", "Report", "Translation", "Z2JHError", "chart_values", "parse", "translate"]
