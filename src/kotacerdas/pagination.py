"""Pagination shared by every list endpoint: `?page=` and `?per_page=`, answered with items and a total."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

import sqlalchemy as sa
from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy.orm import Session

T = TypeVar("T")
MAX_PER_PAGE = 200


@dataclass(frozen=True)
class PageRequest:
    """Which page of a list to return."""

    page: int = 1
    per_page: int = 50

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


@dataclass
class Paged(Generic[T]):
    """One page of results from a service function."""

    items: list[T]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def paginate(session: Session, statement: sa.Select, request: PageRequest) -> Paged:
    """Run `statement` for one page and count the whole result."""
    total = session.scalar(sa.select(sa.func.count()).select_from(statement.order_by(None).subquery())) or 0
    items = list(session.scalars(statement.limit(request.per_page).offset(request.offset)))
    return Paged(items=items, total=total, page=request.page, per_page=request.per_page)


class Page(BaseModel, Generic[T]):
    """A page of a list: the items, how many there are in all, and where this page is."""

    items: list[T]
    total: int
    page: int
    per_page: int


def page_request(
    page: Annotated[int, Query(ge=1, le=1_000_000, description="Page number, from 1")] = 1,
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE, description="Items per page")] = 50,
) -> PageRequest:
    """The `?page=` and `?per_page=` of a list request, bounded."""
    return PageRequest(page=page, per_page=per_page)


# A list endpoint's paging parameters, for the API and pages alike.
PageQuery = Annotated[PageRequest, Depends(page_request)]
