"""Plugin package for household personas (``IPersona``).

Any ``lqos/plugins/`` directory on ``sys.path`` adds to this package, the way
``twisted/plugins`` works, so an operator drops a persona module into such a
directory (say ``/etc/lqos-bufferbloat/plugins/lqos/plugins/cloud_gaming.py``
with that first folder on ``PYTHONPATH``) without touching this package.
"""

from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))
__all__: list[str] = []
