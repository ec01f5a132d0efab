"""Many hosts: boots posted as jobs on taskflow's Redis jobboard (one board
per host), taken by a conductor on each host, runs kept in one shared run
database (doc/source/fleet.rst)."""
