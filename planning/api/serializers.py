from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

ESTIMATE_LABEL = _("预测值（估算），仅供参考，不作为结算支付依据")


class ForecastSerializer(serializers.Serializer):
    """The caller's year-end forecast of one pool (fund) and year: an estimate, never a payment."""

    estimate = serializers.BooleanField(help_text="always true: every figure here is an estimate")
    label = serializers.CharField(help_text="预测值（估算），仅供参考，不作为结算支付依据")
    fund = serializers.CharField()
    year = serializers.IntegerField()
    month = serializers.IntegerField(help_text="the monthly run (January to this month) the estimate is made from")
    run_point_value = serializers.CharField(help_text="V_m of that monthly run (provisional)")
    point_value_estimate = serializers.CharField(help_text="V̂: the estimated year-end point value (4 decimals)")
    band = serializers.CharField(allow_null=True, help_text="largest relative error of the same month's estimate in past years, e.g. 0.031200; null without history")
    point_value_low = serializers.CharField(allow_null=True)
    point_value_high = serializers.CharField(allow_null=True)
    points_to_date = serializers.CharField()
    points_estimate = serializers.CharField(help_text="your year-end points, estimated")
    payment_estimate = serializers.CharField(help_text="your year-end fund payment pay_h, estimated (yuan)")
    made_at = serializers.DateTimeField()
