/*
 * km_cuda.cu -- the GPU backend: the engine's operations (km_kernels.h) as CUDA kernels.
 *
 * Ownership.  The backend owns one CUDA stream, a cuBLAS handle, the device copy of the
 * installed centers, the device copies of resident blocks and scratch buffers that grow on
 * demand.  Every device allocation goes through DevAlloc, which charges it to a budget (the
 * smaller of kmeans.gpu_memory_limit and the memory free when the backend started) and fails
 * with both numbers before asking CUDA.  A block that does not fit stays on the host and is
 * copied through one of two staging slots (pinned host memory and device memory, used in turn)
 * each time an operation needs it: the streaming mode.  The host fills one slot while the
 * device copies and works on the other.
 *
 * Synchronisation.  An operation enqueues its copies and kernels on the backend's stream and
 * waits once, at the end, when its results are on the host.  A Lloyd pass (pass_begin,
 * pass_block per block, pass_end) keeps each row's label and distance on the device, compares
 * and counts changes there, and folds every block's totals into the pass's on the device, so
 * the whole iteration, however many blocks, waits once: in pass_end.  Nothing else waits:
 * copies from pageable memory have taken their source when they return.
 *
 * Determinism.  Row-wise results (labels, distances) are computed by one thread per row and
 * segment, in a fixed order.  Cluster sums, counts and inertia are accumulated as 64-bit
 * fixed-point integers: each value is scaled by a power of two chosen from a bound on the
 * block's values, so that no sum can overflow, and rounded once; integer addition is
 * associative, so the totals are exact and independent of the order atomics land in.  The
 * k-means++ sums are taken per run of KM_SUB_ROWS rows by one thread in row order.  DTW cells
 * are km_dtw.c's operations, none fused, so DTW assignments are the CPU's bits.  The same
 * input on the same device therefore gives bit-identical results.
 *
 * Threads.  CUDA and cuBLAS start helper threads; they are created with every signal blocked
 * (see BlockSignals) so that PostgreSQL's handlers only run in the backend's own thread.
 *
 * Built by nvcc into the extension, or as C++ with KM_CUDA_EMU for the engine tests, where
 * km_cuda_emu.h runs the kernels on the CPU.
 *
 * Layout.  One translation unit (one object, so nvcc needs no separate device linking and the
 * kernels stay file-static), in pieces by concept, each naming its CPU twin and the test that
 * compares them; each piece uses only what the ones before it define:
 *   km_cuda_private.cuh   headers, launch sizes, CUDA_TRY and LAUNCH, the state structs
 *   km_cuda_blas.cuh      cuBLAS opened on first use, or the emulator's SGEMM
 *   km_cuda_state.cuh     the budget, device and pinned buffers, staging slots, blocks, centers
 *   km_cuda_assign.cuh    nearest centers: direct, or GEMM scores and argmin; exact distances
 *   km_cuda_accum.cuh     fixed-point sums, counts and inertia; assign_accumulate
 *   km_cuda_pass.cuh      Lloyd passes with the state on the device: changes, fold
 *   km_cuda_seed.cuh      k-means++: mindist, run sums, potentials; the seed_* operations
 *   km_cuda_quality.cuh   the silhouette
 *   km_cuda_series.cuh    DTW assignment of series: a pair per thread, or per block in waves
 *   km_cuda_backend.cuh   the operation table, the entry points, teardown
 */

#include "km_cuda_private.cuh"
#include "km_cuda_blas.cuh"
#include "km_cuda_state.cuh"
#include "km_cuda_assign.cuh"
#include "km_cuda_accum.cuh"
#include "km_cuda_pass.cuh"
#include "km_cuda_seed.cuh"
#include "km_cuda_quality.cuh"
#include "km_cuda_series.cuh"
#include "km_cuda_backend.cuh"
