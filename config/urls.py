from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from benefits.api import urls as benefits_api
from drg.api import urls as drg_api
from incentives.api import urls as incentives_api
from monitoring.api import urls as monitoring_api
from settlement.api import urls as settlement_api

admin.site.site_header = "DRG 点数付费结算 · drg-settlement"
admin.site.site_title = "drg-settlement"
admin.site.index_title = "医保局工作台 Bureau workspace"

# The hospital API, version 1: every route of the apps under one namespace (see docs/api.md).
api_v1 = ([*drg_api.urlpatterns, *settlement_api.urlpatterns, *incentives_api.urlpatterns, *monitoring_api.urlpatterns, *benefits_api.urlpatterns], "api-v1")

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
