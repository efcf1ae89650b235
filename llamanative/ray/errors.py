"""The errors of :mod:`llamanative.ray`: a dataset whose columns do not fit the call.

Both are raised by :func:`~llamanative.ray.embed_dataset` itself, before
anything runs, when Ray knows the dataset's schema without reading it
(``Dataset.schema(fetch_if_missing=False)``: a column that is missing, or not
of a string type). What only the rows can tell (a null among the texts) is
raised by the actor that reads the batch; it reaches the consumer of the
dataset inside Ray Data's own error (a ``ray.exceptions.RayError``) whose
message holds this class's name, its message and the traceback: Ray does not re-raise
an actor's exception class there.
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
