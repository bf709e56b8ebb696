"""What can go wrong, as codes: the errors a caller sees, and the one failure an opener raises.

Every error names the secret and a code, never a value: no plaintext and no ciphertext in a message.
"""

from __future__ import annotations

import re
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms of every cold start)
if TYPE_CHECKING:
    from typing import Any


class SecretError(Exception):
    """Base class of every error this package raises. ``secret_name`` and ``code`` say what failed;
    the message carries the name and the code, never a secret value."""

    def __init__(self, secret_name: str, message: str, code: str = "SecretError") -> None:
        super().__init__(message)
        self.secret_name = secret_name
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (e.g. across multiprocessing) with name and code
        return (type(self), (self.secret_name, str(self), self.code))


class SecretNotFoundError(SecretError):
    """No ciphertext of that name was sealed into this package (``code`` is ``"SecretNotFound"``)."""

    def __init__(self, secret_name: str, known: tuple[str, ...] = ()) -> None:
        sealed = ", ".join(known) or "none"
        super().__init__(secret_name, f"no sealed secret named {secret_name!r}; this package seals: {sealed}",
                         "SecretNotFound")
        self.known = tuple(known)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.secret_name, self.known))


# Failures that are not KMS's answer get a message saying what they are; every other code is KMS's own
# (InvalidCiphertextException, AccessDeniedException, ...) or the transport's (TimeoutError, ...).
_LOCAL_FAILURES = {
    "InvalidBase64": "its ciphertext in this package is not valid base64 (KMS was not called)",
    "NoFunctionName": "AWS_LAMBDA_FUNCTION_NAME is not set, so its encryption context is unknown (KMS was not called)",
    "PlaintextNotUtf8": "its plaintext is not UTF-8 text (read it with get_secret_bytes)",
    "PlaintextNotJson": "its plaintext is not a JSON document",
}
_LOCAL_FAILURES.update({  # where container credentials come from (credentials.py): KMS was not called
    "ContainerCredentialsHostNotAllowed": "AWS_CONTAINER_CREDENTIALS_FULL_URI names a host that botocore refuses "
                                          "too (plain HTTP only to loopback, 169.254.170.2, 169.254.170.23 or fd00:ec2::23)",
    "ContainerCredentialsTokenInvalid": "the container authorization token is unreadable or not a legal header value "
                                        "(AWS_CONTAINER_AUTHORIZATION_TOKEN or its _FILE)",
    "ContainerCredentialsUnreachable": "the container credentials endpoint did not answer",
    "ContainerCredentialsRefused": "the container credentials endpoint refused to give credentials",
    "ContainerCredentialsInvalid": "the container credentials endpoint's answer is not credentials with an Expiration",
})


class SecretDecryptionError(SecretError):
    """The secret could not be opened. ``code`` is KMS's error code (``InvalidCiphertextException``,
    ``AccessDeniedException``, ``IncorrectKeyException``, ...), the transport's (``TimeoutError``,
    ``ConnectionRefusedError``, ...) or one of ``InvalidBase64``, ``NoFunctionName``,
    ``PlaintextNotUtf8``, ``PlaintextNotJson``.

    Example: ``could not decrypt sealed secret 'db': KMS InvalidCiphertextException``
    """

    def __init__(self, secret_name: str, code: str) -> None:
        reason = _LOCAL_FAILURES.get(code, f"KMS {code}")
        super().__init__(secret_name, f"could not decrypt sealed secret {secret_name!r}: {reason}", code)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.secret_name, self.code))


class DecryptFailure(Exception):
    """How an opener fails: a code and whether another attempt may succeed, nothing else, so that no
    value can travel with it. It never leaves the decrypt's worker thread."""

    def __init__(self, code: str, retryable: bool = False) -> None:
        super().__init__(code)
        self.code, self.retryable = code, retryable


def safe_code(value: object) -> str:
    """An error code fit for a message: codes come from the network, and must not smuggle text in."""
    text = str(value)
    return text if re.fullmatch(r"[A-Za-z][A-Za-z0-9_.]{0,99}", text) else "UnrecognizedError"


def code_of(error: BaseException) -> str:
    """The code of any exception: an opener's own, KMS's (botocore's ClientError carries it), or the
    exception's type name (``TimeoutError``, ``ConnectionRefusedError``, ...)."""
    if isinstance(error, DecryptFailure):
        return error.code
    response = getattr(error, "response", None)
    if isinstance(response, dict) and isinstance(response.get("Error"), dict) and response["Error"].get("Code"):
        return safe_code(response["Error"]["Code"])
    if isinstance(error, TimeoutError) or type(error).__name__ == "timeout":  # socket.timeout before 3.10
        return "TimeoutError"
    return safe_code(type(error).__name__)
