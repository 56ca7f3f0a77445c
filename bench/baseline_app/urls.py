from django.urls import path

from bench.baseline_app.views import ingest

urlpatterns = [path("webhooks/whatsapp/", ingest)]
