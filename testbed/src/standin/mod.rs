//! The stand-in `ipfs-cluster-service` / `ipfs-cluster-ctl` (filled in by the stand-in work).
