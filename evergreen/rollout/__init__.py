"""Rolling deploys without downtime: Caddy in front, ``bentoml serve`` replicas behind it.

- ``caddy``: the router (an edge and a weighted router, configured only through their admin
  APIs); ``processes``: detached processes known by pid and start time;
- ``revisions``: what a revision serves; ``state``: the state file (what runs where, at which
  weight) under a file lock; ``records``: the ledger's append-only rollout tables;
- ``targets`` (``process``), ``container`` and ``kubernetes``: where replicas run;
- ``supervisor``: replicas and router started, drained, stopped, watched (the watchdog);
- ``metrics``, ``evidence``, ``analysis``: each revision's Prometheus metrics and prediction
  log over a window, and the verdict on a canary;
- ``strategies``, ``controller``: blue-green and canary, rollback, resuming after a crash;
- ``status``: what serves now and what served when; ``timeline``: a rollout's table and plot;
  ``load``: a bounded load loop (tests, benchmark).
"""
