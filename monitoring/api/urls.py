"""Hospital API routes of the monitoring app (mounted under /api/v1/, namespace api-v1)."""
from django.urls import path

from monitoring.api import views

urlpatterns = [
    path("indicators/", views.IndicatorCollectionView.as_view(), name="indicators"),
    path("findings/", views.FindingCollectionView.as_view(), name="findings"),
]
