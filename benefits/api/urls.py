"""Hospital API routes of the benefits app (mounted under /api/v1/, namespace api-v1)."""
from django.urls import path

from benefits.api import views

urlpatterns = [
    path("special-outpatient-claims/", views.ClaimCollectionView.as_view(), name="special-outpatient-claims"),
    path("special-outpatient-claims/<str:claim_no>/", views.ClaimDetailView.as_view(), name="special-outpatient-claim-detail"),
    path("special-outpatient-corrections/", views.CorrectionCollectionView.as_view(), name="special-outpatient-corrections"),
]
