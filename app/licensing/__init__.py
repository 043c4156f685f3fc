"""Licensing: signing keys, products, policies, licenses, machines and key validation.

Modules, by meaning:

* ``keyformat``  — the license key's bytes and text (no Flask, no database);
* ``signing``    — each reseller's Ed25519 keys: creation, rotation, JWKS, response signatures;
* ``models``     — products, policies, licenses, machines, bulk issues, validation log;
* ``service``    — issuing and changing licenses (no request objects);
* ``machines``   — activation, deactivation and heartbeats with the seat lock;
* ``validation`` — the validation decision and its documented precedence;
* ``counters``   — validation counts kept in Redis, flushed to rows by a job (``tasks``).
"""
