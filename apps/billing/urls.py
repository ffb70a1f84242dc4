from django.urls import path

from . import api

urlpatterns = [
    path("organisations/<int:organisation_id>/statement/", api.StatementView.as_view(), name="billing-statement"),
    path("organisations/<int:organisation_id>/statement.csv", api.StatementCsvView.as_view(),
         name="billing-statement-csv"),
    path("organisations/<int:organisation_id>/spend/", api.SpendView.as_view(), name="billing-spend"),
    path("top-spenders/", api.TopSpendersView.as_view(), name="billing-top-spenders"),
]
