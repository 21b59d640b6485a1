"""The leaderboard report (``bench-report``): aggregate validated runs into md, csv and html.

    collect (read + validate runs/) -> aggregate (seed groups, card headline, claims, ranks) -> render
"""
from bench.report.build import Report, write_report

__all__ = ["Report", "write_report"]
