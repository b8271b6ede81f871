"""Hospital API routes of the incentives app (mounted under /api/v1/, namespace api-v1)."""
from django.urls import path

from incentives.api import views

urlpatterns = [
    path("incentives/chronic-enrollments/", views.ChronicEnrollmentCollectionView.as_view(), name="chronic-enrollments"),
    path("incentives/chronic-enrollments/<int:pk>/", views.ChronicEnrollmentDetailView.as_view(), name="chronic-enrollment-detail"),
    path("incentives/tcm-workloads/", views.TcmWorkloadCollectionView.as_view(), name="tcm-workloads"),
    path("incentives/tcm-workloads/<int:pk>/", views.TcmWorkloadDetailView.as_view(), name="tcm-workload-detail"),
    path("incentives/hospice-services/", views.HospiceServiceCollectionView.as_view(), name="hospice-services"),
    path("incentives/hospice-services/<int:pk>/", views.HospiceServiceDetailView.as_view(), name="hospice-service-detail"),
    path("incentives/screenings/", views.ScreeningCollectionView.as_view(), name="screenings"),
    path("incentives/screenings/<int:pk>/", views.ScreeningDetailView.as_view(), name="screening-detail"),
    path("incentives/payout-lines/", views.PayoutLineView.as_view(), name="payout-lines"),
]
