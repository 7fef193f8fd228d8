"""Reports: tables, plots, the per-run report and comparisons across runs."""

from vloom.report.compare import compare_runs
from vloom.report.run_report import write_report

__all__ = ["compare_runs", "write_report"]
