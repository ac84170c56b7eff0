//! cluster-upgrade: safe, resumable upgrades of IPFS Cluster peers over SSH.
