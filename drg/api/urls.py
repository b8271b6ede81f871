"""Hospital API routes of the drg app (mounted under /api/v1/ by config/urls.py, namespace api-v1).
The case collection, CSV upload, detail and valuation routes are settlement's (settlement/api/urls.py)."""
from django.urls import path

from drg.api import views

urlpatterns = [
    path("me/", views.MeView.as_view(), name="me"),
    path("cases/<str:case_no>/corrections/", views.CaseCorrectionsView.as_view(), name="case-corrections"),
    path("special-reviews/", views.SpecialReviewCollectionView.as_view(), name="special-reviews"),
    path("special-reviews/<str:case_no>/", views.SpecialReviewDetailView.as_view(), name="special-review-detail"),
    path("correction-requests/", views.CorrectionRequestCollectionView.as_view(), name="correction-requests"),
    path("correction-requests/<int:pk>/", views.CorrectionRequestDetailView.as_view(), name="correction-request-detail"),
]
