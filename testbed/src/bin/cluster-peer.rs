//! The stand-in IPFS Cluster executable. It only works as a release file made by
//! `cluster-lab release VERSION --out DIR`, which names its role and version.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(cluster_testbed::standin::main_with_args(args));
}
