"""
The API's endpoints and their paths, as the emulator serves them.

The paths are spelled out here on purpose instead of imported from the provider's client: a wrong
path in the client must fail against the emulator, not be mirrored by it. Standard library only, so
the fault model, the admin client and the foreign listener share it without importing the server.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["API_ENDPOINTS", "API_ROUTES", "Endpoint"]


class Endpoint(StrEnum):
    """What a request was for; :attr:`RecordedRequest.endpoint` holds one (it compares equal to its value)."""

    TOKEN = "token"
    TRAIN = "train"
    PROGRESS = "progress"
    INFERENCE = "inference"
    #: A path the API does not have (recorded, answered 404).
    OTHER = "other"


#: The endpoints the API serves, in route order.
API_ENDPOINTS: tuple[Endpoint, ...] = (Endpoint.TOKEN, Endpoint.TRAIN, Endpoint.PROGRESS, Endpoint.INFERENCE)

_TRAININGS = "/sestekai-api/api/external/generative-question-answering-trainings"
#: ``(endpoint, method, path pattern)`` of every API route; a trailing slash is accepted as the API does.
API_ROUTES: tuple[tuple[Endpoint, str, str], ...] = (
    (Endpoint.TOKEN, "POST", "/connect/token"),
    (Endpoint.TRAIN, "POST", _TRAININGS + "/train{slash:/?}"),
    (Endpoint.PROGRESS, "GET", _TRAININGS + "/{model_id}/progress{slash:/?}"),
    (Endpoint.INFERENCE, "POST", "/published/{segment}/v1/text/question-answering/inference{slash:/?}"),
)
