"""The frameworks' registries by scope: the one place that picks mmdet's or mmseg's."""
from typing import Any

SCOPES = ('mmdet', 'mmseg')


def registry(scope: str, kind: str = 'MODELS') -> Any:
    """mmdet's or mmseg's registry ``kind`` (``'MODELS'``, ``'DATASETS'``, ...) for ``scope``
    (a config's ``default_scope``), its models / datasets registered (their packages
    imported)."""
    if scope not in SCOPES:
        raise ValueError(f'scope {scope!r} is not one of {SCOPES}')
    if scope == 'mmdet':
        import mmdet.datasets  # noqa: F401  (registers mmdet's datasets and models)
        import mmdet.models  # noqa: F401
        import mmdet.registry as registries
    else:
        import mmseg.datasets  # noqa: F401
        import mmseg.models  # noqa: F401
        import mmseg.registry as registries
    return getattr(registries, kind)


def scope_of_task(task: str) -> str:
    """``'mmdet'`` for ``'detection'``, ``'mmseg'`` for ``'segmentation'``."""
    return 'mmdet' if task == 'detection' else 'mmseg'
