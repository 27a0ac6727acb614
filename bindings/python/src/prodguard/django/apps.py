from django.apps import AppConfig


class ProdguardConfig(AppConfig):
    """prodguard's management commands: guarded_migrate, guarded_flush."""

    name = "prodguard.django"
    label = "prodguard"
    verbose_name = "prodguard"
