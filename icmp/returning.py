"""`update_returning`: a QuerySet's UPDATE that hands back the rows it changed, in one query.

Django 5.2 has no `UPDATE … RETURNING` in the ORM. PostgreSQL and SQLite
(3.35 and later) both have it, so the claims of the message path (a turn's
lease, the messages it answers) take a row and read it in one round trip.
The UPDATE is Django's own (its compiler writes the SET and WHERE, so
expressions, subqueries and F() work as in `QuerySet.update`); this only adds
the RETURNING clause and converts the columns as a SELECT would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from django.db import NotSupportedError, connections
from django.db.models import Model, QuerySet
from django.db.models.sql.subqueries import UpdateQuery

M = TypeVar("M", bound=Model)


def update_returning(queryset: QuerySet[M], *, returning: Sequence[str], **updates: Any) -> list[M]:
    """`queryset.update(**updates)`, returning the updated rows as (partial) model instances.

    `returning` names the fields to read back (the primary key is always read);
    the other fields of the instances are deferred. The rows come in no
    particular order. It is one statement: a row that another transaction is
    changing is waited for, then updated and returned as it is after this update.
    """
    if not updates:
        raise ValueError("update_returning needs at least one field to update.")
    if queryset.query.is_sliced:
        raise TypeError("Cannot update a query once a slice has been taken.")
    connection = connections[queryset.db]
    if not connection.features.can_return_columns_from_insert:
        raise NotSupportedError(f"{connection.vendor} cannot return rows from an UPDATE here.")
    model = queryset.model
    meta = model._meta
    wanted = {meta.pk.attname, *(meta.get_field(name).attname for name in returning)}
    # In the model's own order: `Model.from_db` expects the values that way.
    fields = [field for field in meta.concrete_fields if field.attname in wanted]

    query = queryset.query.chain(UpdateQuery)
    query.add_update_values(updates)
    query.annotations = {}
    query.clear_ordering(force=True)
    compiler = query.get_compiler(queryset.db)
    sql, params = compiler.as_sql()
    table = connection.ops.quote_name(meta.db_table)
    columns = ", ".join(f"{table}.{connection.ops.quote_name(field.column)}" for field in fields)

    cols = [field.get_col(meta.db_table) for field in fields]
    converters = compiler.get_converters(cols)
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} RETURNING {columns}", params)
        rows = cursor.fetchall()
    if converters:
        rows = list(compiler.apply_converters(rows, converters))
    names = [field.attname for field in fields]
    return [model.from_db(queryset.db, names, list(row)) for row in rows]
