"""Tags of the account's channels and stream keys: TagResource, UntagResource and
ListTagsForResource, with IVS's limits."""

from __future__ import annotations

from metadata_gateway.local_ivs.accounts import require_owner
from metadata_gateway.local_ivs.errors import not_found, validation
from metadata_gateway.local_ivs.validation import (
    MAX_TAGS,
    check_resource_arn,
    check_tag_key,
    check_tags,
    invalid,
)


class TagTable:
    """Each resource's tags, by ARN; a resource is in the table from its creation."""

    def __init__(self) -> None:
        self.by_arn: dict[str, dict[str, str]] = {}

    def __repr__(self) -> str:
        return f"<TagTable resources={len(self.by_arn)}>"

    def of(self, resource_arn: str) -> dict[str, str]:
        """The tags of a resource the caller owns (ValidationException, AccessDenied or
        ResourceNotFound otherwise)."""
        check_resource_arn("resourceArn", resource_arn)
        require_owner(resource_arn)
        tags = self.by_arn.get(resource_arn)
        if tags is None:
            raise not_found(f"Resource: {resource_arn} not found")
        return tags

    def tag(self, resource_arn: str, tags: dict[str, str]) -> None:
        """TagResource: add or replace tags, at most 50 per resource."""
        check_resource_arn("resourceArn", resource_arn)
        check_tags("tags", tags)
        current = self.of(resource_arn)
        merged = {**current, **tags}
        if len(merged) > MAX_TAGS:
            raise validation(
                f"A resource can have at most {MAX_TAGS} tags; this would make {len(merged)}"
            )
        current.update(tags)

    def untag(self, resource_arn: str, tag_keys: list[str]) -> None:
        """UntagResource: remove the named tags (absent ones are ignored)."""
        check_resource_arn("resourceArn", resource_arn)
        if len(tag_keys) > MAX_TAGS:
            raise invalid("tagKeys", None, f"have at most {MAX_TAGS} entries")
        for key in tag_keys:
            check_tag_key("tagKeys", key)
        current = self.of(resource_arn)
        for key in tag_keys:
            current.pop(key, None)
