"""What the OpenAPI document says beyond Litestar's defaults, so that it matches what the API
does: bodies refuse unknown fields, an optional body is optional, errors are `ApiError`."""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Operation, RequestBody, Schema
from litestar.plugins import OpenAPISchemaPlugin

from shared.schemas import ApiError

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.typing import FieldDefinition


class ClosedStructs(OpenAPISchemaPlugin):
    """A msgspec Struct with `forbid_unknown_fields` (every wire type: `shared.schemas.Schema`)
    is documented with `additionalProperties: false`; Litestar's own Struct schema, which this
    extends, leaves that out although msgspec refuses the unknown field."""

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return (
            not field_definition.is_union
            and field_definition.is_subclass_of(msgspec.Struct)
            and bool(field_definition.annotation.__struct_config__.forbid_unknown_fields)
        )

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: SchemaCreator
    ) -> Schema:
        litestars = next(
            plugin
            for plugin in schema_creator.plugins
            if plugin is not self and schema_creator.plugin_supports_field(plugin, field_definition)
        )
        schema = litestars.to_openapi_schema(field_definition, schema_creator)
        schema.additional_properties = False
        return schema


@dataclass
class OptionalBody(Operation):
    """An operation whose body may be left out (Litestar marks every body required)."""

    def __post_init__(self) -> None:
        if isinstance(self.request_body, RequestBody):
            self.request_body.required = False


# What each error status means on this API; every one answers `ApiError`.
_MEANING = {
    400: "Invalid request: a parameter or the body is wrong (`detail` says which, when known)",
    401: "Missing or unknown bearer token",
    404: "No such resource for this user",
    403: "The notification's channel token does not match the channel's (a forgery)",
    409: "The request cannot be done in the server's current configuration",
    413: "Request body too large",
    503: "Not ready, or the database is unavailable: try again later (`Retry-After`)",
}


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """The error answers of an operation, as `responses=` of its route decorator."""
    return {
        status: ResponseSpec(
            data_container=ApiError,
            description=_MEANING.get(status, HTTPStatus(status).phrase),
            generate_examples=False,
        )
        for status in sorted(statuses)
    }


# Every route that acts as a user: a missing or unknown token is 401 before anything else.
AUTHENTICATED = (401,)
# ...and one with parameters: 400 when one is wrong.
WITH_PARAMETERS = (400, 401)
# ...and one with a JSON body: 413 when it is too large.
WITH_BODY = (400, 401, 413)
