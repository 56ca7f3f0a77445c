"""A paginator for message-sized tables: it never counts the whole table.

Django's changelist asks the paginator for `count`, which is a `COUNT(*)` over
every matching row: on PostgreSQL that is a full scan of millions of messages
on each page view. Counting a sliced queryset makes Django emit
`SELECT COUNT(*) FROM (SELECT … LIMIT n)`, which stops after n rows.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property

COUNT_LIMIT = 10_000


class BoundedCountPaginator(Paginator):
    """Counts at most `count_limit + 1` rows; beyond that the count is a floor."""

    count_limit = COUNT_LIMIT

    @cached_property
    def count(self) -> int:
        if isinstance(self.object_list, QuerySet):
            # No ORDER BY inside the bounded count: sorting first would read every row.
            return self.object_list.order_by()[: self.count_limit + 1].count()
        return len(self.object_list)

    @property
    def count_is_capped(self) -> bool:
        return self.count > self.count_limit
