"""Use cases: each module glues protocol, backends and store for one job."""
