// libtorch holds global state (thread counts, default dtype, RNG): run test classes one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
