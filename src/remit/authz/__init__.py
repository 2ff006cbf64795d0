"""Authorization: one Task vocabulary, one role→task table, one decision function.

Every operation calls :func:`remit.authz.decide.authorize` with the actor, the task it needs and
the scope of the object; lists are narrowed in SQL by :mod:`remit.authz.visibility`.
"""
