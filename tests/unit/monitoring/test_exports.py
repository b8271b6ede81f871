from decimal import Decimal as D

from monitoring.exports import cmi_trend_svg, safe_cell


def test_formula_like_text_gets_an_apostrophe_and_numbers_stay_numbers():
    assert [safe_cell(v) for v in ("=1+1", "+86", "-3", "@SUM(A1)", "H1", "医院")] == ["'=1+1", "'+86", "'-3", "'@SUM(A1)", "H1", "医院"]
    assert safe_cell("a\x00b\x07c") == "abc" and safe_cell("\x00=1") == "'=1"
    assert safe_cell(D("-1.5000")) == D("-1.5000") and safe_cell(7) == 7 and safe_cell(None) is None


def test_the_cmi_chart_escapes_labels_and_draws_one_line_per_series():
    svg = cmi_trend_svg(series={"<H1>": [(1, D("1.0")), (2, D("1.2"))]}, pool=[(1, D("1.1")), (2, D("1.1"))])
    assert svg.count("<polyline") == 2 and "&lt;H1&gt;" in svg and "<H1>" not in svg
    assert cmi_trend_svg(series={}, pool=[]) == ""
