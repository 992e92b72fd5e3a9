"""The virtual household: personas that load the line the way real applications do.

Each persona is a plugin (``IPersona``) found with ``twisted.plugin.getPlugins``
in the ``lqos.plugins`` package, and runs in a child process of its own on
its own port.  A persona only declares what it is (traffic plan, deadline,
scoring); one generic protocol (``lqos.personas.protocol``) plays any plan.
"""
