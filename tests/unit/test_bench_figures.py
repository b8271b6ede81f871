"""The README's figures table is made from a bench report (demo.figures): every phase's figures and verdicts."""
from __future__ import annotations

from demo.figures import END, START, figures_table, readme_update

REPORT = {
    "cases": 1_000_000, "cpu_count": 2, "region": "BN00001", "seconds": 600, "database": {"vendor": "postgresql"},
    "targets": {"load_to_copy_ratio": 5.0, "rest_cases_per_s": 5000},
    "load": {"seconds": 51.7, "ratio_to_copy": 35.51, "bare_copy_seconds": 1.457, "cases_per_s": 19326, "peak_rss_mb": 1860.5,
             "phases": {"read": 0.3, "check": 8.4}, "floor": {"seconds": 9.012, "direct": {"seconds": 7.069}},
             "floor_ratio_to_copy": 6.18, "direct_floor_ratio_to_copy": 4.85},
    "planning": {"rate_setting": {"seconds": 2.9, "cases_kept": 2_990_000}, "scenario": {"seconds": 3.1},
                 "forecast": {"seconds": 0.02}, "peak_rss_mb": 1179},
    "monitoring": {"seconds": 3.6, "phases": {"read": 2.5, "indicators": 0.4, "screen": 0.6}, "findings": 12},
    "benefits_settle": {"claims": 1_000_000, "patients": 100_000, "seconds": 2.7, "claims_per_s": 370_370},
    "benefits_counter": {"earlier_claims": 200, "p95_ms": 48.5, "p50_ms": 30.1, "baseline_me_p95_ms": 7.2, "load_average_1m": 1.5},
    "verdicts": [
        "bundle load / bare COPY (first load): 35.5 × (target ≤ 5.0 ×) MISSED — slowest loader phase: check 8.4s",
        "rate-setting, 3 years: 2.9 s (target ≤ 20.0 s) MET", "annual scenario: 3.1 s (target ≤ 15.0 s) MET",
        "forecast after a monthly run: 0.0 s (target ≤ 1.0 s) MET",
        "monitoring (indicators + 5 screens, read included): 3.6 s (target ≤ 20.0 s) MET",
        "special-outpatient settlement (1,000,000 claims): 2.7 s (target ≤ 30 s) MET",
        "special-outpatient counter p95 (200 earlier claims): 48.5 ms (target ≤ 50 ms) MISSED",
    ],
}


def _row(table: str, start: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(f"| {start}"))
    return [cell.strip() for cell in line.strip("|").split(" | ")]


def test_the_first_load_row_carries_the_floor_of_the_same_run():
    cells = _row(figures_table(REPORT), "bundle load, first load")
    assert "51.7 s = 35.51× a bare COPY of cases.csv (1.46 s)" in cells[1]
    assert "9.0 s = 6.18×" in cells[1] and "7.1 s = 4.85×" in cells[1]
    assert cells[3] == "missed"


def test_planning_monitoring_and_special_outpatient_rows_come_from_the_report():
    table = figures_table(REPORT)
    planning = _row(table, "planning")
    assert planning[1].startswith("2.9 s (2,990,000 cases kept); 3.1 s; 0.02 s") and planning[3] == "met, met, met"
    monitoring = _row(table, "monitoring")
    assert monitoring[1] == "3.6 s (read 2.5 s, indicators 0.4 s, screen 0.6 s); 12 findings" and monitoring[3] == "met"
    assert _row(table, "special-outpatient claims settled")[1:] == ["2.7 s (370,370 claims/s)", "≤ 30 s", "met"]
    counter = _row(table, "special-outpatient claim posted")
    assert counter[1].startswith("p95 48.5 ms, p50 30.1 ms") and counter[3] == "missed"


def test_a_report_without_those_phases_leaves_their_rows_out_and_readme_is_rewritten_between_the_markers(tmp_path):
    short = {key: value for key, value in REPORT.items() if key not in ("planning", "monitoring", "benefits_settle", "benefits_counter")}
    assert "planning" not in figures_table(short) and "special-outpatient" not in figures_table(short)
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{START}\nold table\n{END}\nafter\n", encoding="utf-8")
    assert readme_update(readme=readme, results=REPORT)
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("before\n") and text.endswith("after\n") and "old table" not in text
    assert "| monitoring: indicators" in text
