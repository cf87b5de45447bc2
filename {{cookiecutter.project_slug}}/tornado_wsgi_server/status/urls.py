from django.urls import path

from . import views

app_name = "tornado_status"
urlpatterns = [
    path("", views.status_page, name="page"),
    path("data.json", views.status_data, name="data"),
]
