"""One exception tree for the engine.

Domain errors also inherit the matching built-in so callers that only know
``ValueError``/``FileNotFoundError`` still catch them. The CLI prints the message
of any ``RedlineError`` as one line; the API maps classes to status codes once.
"""


class RedlineError(Exception):
    """Base of every error the engine raises on purpose."""


class InputError(RedlineError, ValueError):
    """The user gave something the engine cannot use (bad file, bad option, bad table)."""


class MissingFileError(InputError, FileNotFoundError):
    """A path the user named does not exist."""


class NotARasterError(InputError):
    """A change product is not a readable raster (corrupt, wrong format)."""


class CRSError(InputError):
    """A dataset has no CRS, or a CRS the engine cannot use."""


class FieldMappingError(InputError):
    """A required attribute is missing from a layer, or a value cannot be mapped."""


class UnknownClassError(InputError):
    """A raster holds class codes that its class table does not declare."""


class NoOverlapError(InputError):
    """A change product does not overlap any loaded protection layer."""


class NotFoundError(RedlineError, LookupError):
    """A stored object (flag, scan, layer version) does not exist."""


class ConflictError(RedlineError):
    """The request conflicts with stored state (e.g. an illegal status transition)."""


class StoreError(RedlineError):
    """The store is unusable (bad URL, schema from a newer version)."""


class AuthenticationError(RedlineError):
    """No credentials, or credentials that match no active token."""


class PermissionDeniedError(RedlineError, PermissionError):
    """The caller's role or jurisdiction does not allow this."""


class TooLargeError(InputError):
    """An input exceeds a size limit (bytes, vertices, features)."""


class BusyError(RedlineError):
    """The service is at capacity, or a request's work ran past its time limit (try later)."""
