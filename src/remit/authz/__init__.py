"""Authorization: one Task vocabulary, one role→task table, one decision function, and the
relationships that grant rights besides roles.

Every operation calls :func:`remit.authz.decide.authorize` with the actor, the task it needs and
the scope of the object; lists are narrowed in SQL by :mod:`remit.authz.visibility`. Rights that
come from a relationship (self, manager, sponsor, owner, site administrator, approver of a
stage) are :mod:`remit.authz.relations`, each defined once for Python and, where a list needs
it, SQL (decision 0026).
"""
