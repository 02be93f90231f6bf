"""Keep the callback secret out of mapped (``partial``/``expand``) arguments, which the serialized DAG stores."""

from __future__ import annotations

from typing import Any

_SECRET_ARG = "callback_client_secret"


def refuse_mapped_secret(kwargs: Any, where: str) -> None:
    """
    Refuse the callback secret as a mapped argument: ``partial()``/``expand()`` arguments are stored in the
    serialized DAG, readable in the metadata DB.

    :param kwargs: the arguments given to ``where``.
    :param where: ``partial``, ``expand`` or ``expand_kwargs``.
    """
    if isinstance(kwargs, dict) and _SECRET_ARG in kwargs:
        raise TypeError(
            f"SestekTrainOperator.{where}() does not take {_SECRET_ARG}: mapped arguments are stored in the "
            "serialized DAG. Put the callback credentials in a connection and pass callback_conn_id instead."
        )


def refuse_default_args_secret(default_args: Any) -> None:
    """
    Refuse the callback secret in ``default_args`` (of the DAG or the task): the serialized DAG stores them
    whole, whichever operator reads them.

    :param default_args: the default arguments in effect.
    """
    if isinstance(default_args, dict) and _SECRET_ARG in default_args:
        raise TypeError(
            f"{_SECRET_ARG} must not be in default_args: the serialized DAG stores them, readable in the "
            "metadata DB. Put the callback credentials in a connection and pass callback_conn_id instead."
        )


_GUARDED: dict[Any, type] = {}


def guarded_partial(partial_class: Any) -> type:
    """
    A subclass of Airflow's ``OperatorPartial`` whose ``expand``/``expand_kwargs`` refuse the secret too.
    ``__slots__ = ()`` keeps the layout of the (slotted attrs) parent, so the instance's class can change.
    """
    if partial_class not in _GUARDED:

        def expand(self: Any, **mapped_kwargs: Any) -> Any:
            refuse_mapped_secret(mapped_kwargs, "expand")
            return partial_class.expand(self, **mapped_kwargs)

        def expand_kwargs(self: Any, kwargs: Any, *args: Any, **options: Any) -> Any:
            for item in kwargs if isinstance(kwargs, list | tuple) else ():
                refuse_mapped_secret(item, "expand_kwargs")
            return partial_class.expand_kwargs(self, kwargs, *args, **options)

        _GUARDED[partial_class] = type(
            f"SecretGuarded{partial_class.__name__}",
            (partial_class,),
            {"__slots__": (), "expand": expand, "expand_kwargs": expand_kwargs, "__module__": __name__},
        )
    return _GUARDED[partial_class]
