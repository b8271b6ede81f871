"""Hospital API routes of the settlement app (mounted under /api/v1/, namespace api-v1)."""
from django.urls import path

from settlement.api import cases, views

urlpatterns = [
    path("cases/", cases.CaseCollectionView.as_view(), name="cases"),
    path("cases/csv/", cases.CaseCsvUploadView.as_view(), name="cases-csv"),  # before cases/<case_no>/
    path("cases/<str:case_no>/", cases.CaseDetailView.as_view(), name="case-detail"),
    path("cases/<str:case_no>/valuation/", cases.CaseValuationView.as_view(), name="case-valuation"),
    path("statements/", views.StatementCollectionView.as_view(), name="statements"),
    path("statements/<int:run_id>/", views.StatementDetailView.as_view(), name="statement-detail"),
    path("statements/<int:run_id>/statement.<str:fmt>", views.StatementFileView.as_view(), name="statement-file"),
    path("itemized-claims/", views.ItemizedClaimCollectionView.as_view(), name="itemized-claims"),
    path("itemized-claims/<str:claim_no>/", views.ItemizedClaimDetailView.as_view(), name="itemized-claim-detail"),
]
