"""SQL read with Postgres' own parser, parsed and cached in one place (:mod:`pipeline.sqlshape.parse`).

- :mod:`~pipeline.sqlshape.identity`: a statement's fingerprint, normalised text and summary (storage spans);
- :mod:`~pipeline.sqlshape.select`: whether it is a plain read, and what a SELECT filters and sorts on
  (plan capture's gate, the slow-lookup diagnosis);
- :mod:`~pipeline.sqlshape.planhash`: an EXPLAIN plan's shape as a hash (before and after an index).
"""

from __future__ import annotations

from pipeline.sqlshape.identity import StatementInfo, statement_info, strip_literals, to_dollar_params
from pipeline.sqlshape.planhash import plan_shape_hash
from pipeline.sqlshape.select import SelectShape, SortColumn, TableUse, is_read_only_select, select_shape

__all__ = [
    "SelectShape",
    "SortColumn",
    "StatementInfo",
    "TableUse",
    "is_read_only_select",
    "plan_shape_hash",
    "select_shape",
    "statement_info",
    "strip_literals",
    "to_dollar_params",
]
