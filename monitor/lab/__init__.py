"""``wardwatch lab``: a simulated network of commune-level units on loopback.

- ``plan``: the pure address and name plan (which 127.x address and name each unit's
  router, video-conference rooms, portal, mail host and old domains get);
- ``pki``: the lab CA, per-unit server certificates and signing-certificate files;
- ``imperfections``: the deliberate faults every lab ships with (chosen by index);
- ``dns``: the zone and the NSD process that serves it;
- ``servers``: the simulated HTTPS/HTTP/SMTP/VC servers (shared listeners);
- ``control``: the fault-control endpoint and its client;
- ``inventory``: the ``lab-inventory.yaml`` matching the lab;
- ``runner``: starts and stops all of it.
"""
