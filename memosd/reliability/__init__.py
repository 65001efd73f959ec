"""``memosd reliability``: suites that try to break a real daemon and check that it holds.

Each suite starts its own daemon(s) on temporary stores, drives them over the
real sockets and returns a :class:`~memosd.reliability.result.SuiteResult`
saying whether its bar was met:

- :mod:`.crash`: kill -9 under concurrent writers; no acknowledged write lost.
- :mod:`.load`: 64 concurrent clients, mixed operations; no errors.
- :mod:`.fuzz`: hostile requests for every operation and mutated frames; the
  daemon never crashes, hangs, answers outside the protocol, or touches data
  it was not asked to.
- :mod:`.fairness`: 32 polite clients beside one that floods recalls and never
  reads; the polite clients' latency stays within 1.5x of a run without it.
- :mod:`.soak`: sustained load with the daemon's RSS sampled; no growth.
- :mod:`.cluster`: three nodes on a three-server NATS cluster; kill -9 of a
  node and of a NATS server under writers, and a resumed old owner; no
  acknowledged write lost or stored twice, and the old owner is fenced.

See docs/reliability.md.
"""

SUITES = ("crash", "load", "fuzz", "fairness", "soak", "cluster")
"""The suites in the order ``memosd reliability all`` runs them."""
