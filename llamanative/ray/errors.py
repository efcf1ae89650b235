"""The errors of :mod:`llamanative.ray`: a dataset whose columns do not fit the call.

Both are raised before any model runs when the dataset's schema is known
(``Dataset.schema(fetch_if_missing=False)``), else by the actor that reads the
first offending batch; Ray re-raises an actor's error in the caller as an
exception that is also an instance of the original class, so
``except ColumnError`` works either way.
"""

from __future__ import annotations

__all__ = ["ColumnError", "ColumnTypeError"]


class ColumnError(ValueError):
    """The text column is missing, or the output column would replace a column of the dataset.

    ``column`` is the column at fault.
    """

    def __init__(self, message: str, column: str) -> None:
        super().__init__(message)
        self.column = column

    def __reduce__(self):  # one argument more than Exception's: Ray pickles errors across processes
        return (type(self), (str(self), self.column))


class ColumnTypeError(ColumnError, TypeError):
    """The text column holds values that are not strings (numbers, bytes, nulls).

    Also a ``TypeError``, the built-in exception for a value of the wrong type.
    """
