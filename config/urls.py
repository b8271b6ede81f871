from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from benefits.api import urls as benefits_api
from drg.api import urls as drg_api
from incentives.api import urls as incentives_api
from monitoring.api import urls as monitoring_api
from planning.api import urls as planning_api
from settlement.api import urls as settlement_api

admin.site.site_header = _("DRG 点数付费结算")
admin.site.site_title = _("DRG 点数付费结算")
admin.site.index_title = _("医保局工作台")

# The hospital API, version 1: every route of the apps under one namespace (see docs/api.md).
api_v1 = ([*drg_api.urlpatterns, *settlement_api.urlpatterns, *incentives_api.urlpatterns, *monitoring_api.urlpatterns, *benefits_api.urlpatterns, *planning_api.urlpatterns], "api-v1")

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),  # set_language: the admin's language switch
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
