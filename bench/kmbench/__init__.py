"""kmbench: the benchmark of the kmeans PostgreSQL extension against scikit-learn, FAISS and
tslearn (and PyTorch on a GPU).

Every workload is a fixed-seed numpy array.  The same array is loaded into a table (binary
COPY, so the table holds exactly the float32 values the peers get) and handed to the peers,
and every engine starts from the same k rows of it as initial centers.  Time per Lloyd
iteration is measured the same way for every engine: the difference of two fits that differ
only in the number of iterations, divided by the difference in iterations; ours' own step log
(kmeans_last_fit) gives a second measure.

The elbow workloads (seed: the real seismic profiles in ../shared/data; wide: a synthetic
11,346 x 100 set) time one kmeans_elbow call for k = 3..49 against a loop over k with each
peer (tslearn too on seed), each engine with its own seeding, and compare the inertia per k.

Run `bench/bench.py --help`; bench/README.md explains the output.  The modules: util (logging,
CPU time), data (generators, tables), db (the connection), engines/ (one module per engine),
workloads/ (one module per workload, the two procedures periter and elbow), report (tables,
notes, machine, JSON), cli (the options and the run).
"""
