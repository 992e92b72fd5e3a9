"""The daemon: ``twistd lqos-bufferbloat``, its configuration, its service tree and its child processes.

``tap`` is the command line, ``config`` the one parser of lqos_test.conf,
``service`` the tree of services, ``supervisor`` and ``childproc`` the
parent and child ends of every child process, ``endpoints`` the listening
ports and their certificates, ``secret`` the key that signs tokens.
"""
