"""Hospital API routes of planning (mounted under /api/v1/, namespace api-v1)."""
from django.urls import path

from planning.api import views

urlpatterns = [
    path("forecast/", views.ForecastView.as_view(), name="forecast"),
]
