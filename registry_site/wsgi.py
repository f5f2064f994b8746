"""WSGI entry point for gunicorn (`registry_site.wsgi:application`); gunicorn's own settings and hooks
are registry_site/gunicorn.conf.py."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry_site.settings")

application = get_wsgi_application()
