"""Hospital API: the caller's own year-end forecast (PLANNING.md §3), labelled an estimate."""
from __future__ import annotations


from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from common.precision import r4
from drg.api.base import InstitutionAPIView, error_responses
from drg.api.errors import ApiError, ApiErrorItem
from planning.api.serializers import ESTIMATE_LABEL, ForecastSerializer
from planning.models import ForecastLine
from planning.selectors import latest_forecast_lines


def _row(line: ForecastLine) -> dict:
    forecast = line.forecast
    band = forecast.band
    low = high = None
    if band is not None:
        low, high = str(r4(forecast.point_value * (1 - band))), str(r4(forecast.point_value * (1 + band)))
    return {
        "estimate": True, "label": str(ESTIMATE_LABEL), "fund": forecast.fund, "year": forecast.year, "month": forecast.month,
        "run_point_value": str(forecast.run_point_value), "point_value_estimate": str(forecast.point_value),
        "band": None if band is None else str(band), "point_value_low": low, "point_value_high": high,
        "points_to_date": str(line.points), "points_estimate": str(line.points_forecast), "payment_estimate": str(line.payment),
        "made_at": forecast.created_at,
    }


class ForecastView(InstitutionAPIView):
    queryset = ForecastLine.objects.none()  # for the schema; rows come from the planning selector

    @extend_schema(
        summary="Your year-end forecast (an estimate, never a payment) per fund, from the latest finalized monthly run",
        description="点值预测：预测值（估算），仅供参考，不作为结算支付依据. Only the caller's own institution.",
        parameters=[OpenApiParameter("year", int, OpenApiParameter.QUERY, required=False)],
        responses={200: ForecastSerializer(many=True), **error_responses(400, 401, 429)},
    )
    def get(self, request):
        year = request.query_params.get("year")
        if year is not None and not (year.isascii() and year.isdigit() and len(year) == 4):
            raise ApiError([ApiErrorItem(code="invalid", message="year must be a 4-digit year", field="year")])
        lines = [line for line in latest_forecast_lines(institution=self.institution) if year is None or line.forecast.year == int(year)]
        return Response(ForecastSerializer([_row(line) for line in lines], many=True).data)
