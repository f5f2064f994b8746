"""What is refused before any view runs: oversized request bodies before any byte of them is read, and
writes sent by web pages of origins the registry does not serve."""

from __future__ import annotations

from urllib.parse import urlsplit

from corsheaders.middleware import CorsMiddleware
from django.conf import settings
from django.http import HttpRequest, JsonResponse

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


def body_over_limit(content_type: str, length: int) -> tuple[int, str] | None:
    """(the limit, what it limits) when a body of this type and announced length is refused unread.
    Also asked by the gunicorn worker, which then passes the request on without waiting for its body."""
    if content_type.lower().startswith(FILE_CONTENT_TYPES):
        if length > settings.REGISTRY_MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD:
            return settings.REGISTRY_MAX_UPLOAD_BYTES, "upload"
    elif length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        return settings.DATA_UPLOAD_MAX_MEMORY_SIZE, "request body"
    return None


class RequestSizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"detail": "Content-Length is not a number."}, status=400)
        refused = body_over_limit(request.META.get("CONTENT_TYPE", ""), length)
        if refused is not None:
            return too_large_response(*refused)
        return self.get_response(request)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CrossOriginMiddleware(CorsMiddleware):
    """django-cors-headers (CORS_ALLOWED_ORIGINS, CORS_ALLOWED_ORIGIN_REGEXES), plus a refusal CORS alone
    does not make: a request that would change something, sent by a web page of another origin that is not
    allowed, is a 403 before any view runs. Without it such a page could not read the answer but would
    still get its request carried out: a form post (urlencoded, text/plain or multipart/form-data) is a
    "simple" request that browsers send without asking first. Browsers always name the page's origin in
    `Origin` on such requests; scripts and command-line clients send none and are not concerned."""

    def __call__(self, request: HttpRequest):
        origin = request.headers.get("origin")
        if origin is not None and request.method not in SAFE_METHODS and not self._may_write(request, origin):
            response = JsonResponse(
                {
                    "detail": f"Requests from web pages of {origin} may not change this registry; "
                    "allowed origins are listed in REGISTRY_CORS_ORIGINS."
                },
                status=403,
            )
            return self.add_response_headers(request, response)
        return super().__call__(request)

    def _may_write(self, request: HttpRequest, origin: str) -> bool:
        try:
            url = urlsplit(origin)
        except ValueError:
            return False
        same_origin = f"{request.scheme}://{request.get_host()}".lower() == origin.lower()
        return same_origin or self.origin_found_in_white_lists(origin, url)


class HeadWithoutBodyMiddleware:
    """A HEAD is answered as its GET, without the body. Django leaves that to the server, and gunicorn
    sends whatever the application returns, so `HEAD /health` came with the JSON. The headers, with the
    GET's Content-Length, stay."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.method == "HEAD":
            if response.streaming:
                response.streaming_content = []  # the file it held is still closed with the response
            else:
                if not response.has_header("Content-Length"):
                    response["Content-Length"] = str(len(response.content))
                response.content = b""
        return response


# Scripts only from the registry itself (the admin's and the bundled Swagger UI's files; /docs serves its
# start-up script as a file too, SpectacularSwaggerSplitView), no plugins, no framing, forms post only
# here. Inline styles stay allowed: the admin's templates and Swagger UI use style attributes.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class ContentSecurityPolicyMiddleware:
    """The policy on every page a browser renders (the admin, /docs); JSON and files carry it too, which
    costs nothing and keeps an uploaded HTML file opened by mistake from running anything."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response
