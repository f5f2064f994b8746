"""Refuse oversized request bodies before any byte of them is read."""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse

# Room for the form fields and multipart boundaries that travel with a file of the maximum size.
MULTIPART_OVERHEAD = 1024 * 1024
FILE_CONTENT_TYPES = ("multipart/form-data", "application/octet-stream")


def too_large_response(limit: int, what: str) -> JsonResponse:
    response = JsonResponse(
        {"detail": f"The {what} is larger than this registry accepts ({limit} bytes).", "limit": limit},
        status=413,
    )
    response["Content-Length"] = str(len(response.content))
    # The client may still be sending a body that will never be read: the connection cannot be reused.
    # (gunicorn drops this header and keeps the connection; registry_site/gunicorn.conf.py's
    # post_request hook closes it instead.)
    response["Connection"] = "close"
    return response


class RequestSizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"detail": "Content-Length is not a number."}, status=400)
        content_type = request.META.get("CONTENT_TYPE", "").lower()
        if content_type.startswith(FILE_CONTENT_TYPES):
            limit = settings.REGISTRY_MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD
            if length > limit:
                return too_large_response(settings.REGISTRY_MAX_UPLOAD_BYTES, "upload")
        elif length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return too_large_response(settings.DATA_UPLOAD_MAX_MEMORY_SIZE, "request body")
        return self.get_response(request)
