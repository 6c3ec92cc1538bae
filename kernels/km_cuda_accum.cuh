/*
 * km_cuda_accum.cuh -- cluster sums, counts and inertia of a block as 64-bit fixed point (see
 * km_cuda.cu, Determinism): per entry for narrow rows, grouped by label (a counting sort) for
 * wide ones; and the one-wait Lloyd step, assign_accumulate.
 *
 * CPU twin: CpuAccumulate (km_cpu.c), whose AccumNarrow and GroupByLabel + AccumCluster the
 * narrow and grouped sums mirror.  Tested by test/engine/test_cuda.c, RunCase "accumulate the
 * CPU's labels on both": counts equal, sums within 1e-12 of the largest, inertia within 1e-9,
 * a streamed block bit-identical, and assign_accumulate bit-identical to assign then
 * accumulate.
 *
 * Part of km_cuda.cu's unity build, included after km_cuda_assign.cuh.
 */

/*
 * The power of two that turns values of magnitude up to bound, summed up to count times, into
 * integers below 2^62.  The same function on host and device, so both agree on the scale.
 */
static __host__ __device__ double
FixScale(double bound, int64_t count)
{
	double		total = bound * (double) (count > 0 ? count : 1);
	int			e;

	if (!(total > 0.0))
		return 1.0;
	frexp(total, &e);			/* total < 2^e */
	return ldexp(1.0, 62 - e);
}

static __device__ __forceinline__ unsigned long long
Fix(float v, double scale)
{
	return (unsigned long long) __double2ll_rn((double) v * scale);
}

/* The largest distance of the entries, as the bits of a non-negative float. */
static __global__ void
max_dist_kernel(const float *dist, int64_t entries, unsigned *dmax)
{
	unsigned	m = 0;

	for (int64_t e = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; e < entries;
		 e += (int64_t) gridDim.x * blockDim.x)
	{
		unsigned	u = __float_as_uint(dist[e]);

		/* distances are >= 0, whose bit patterns order as the values do; -0 counts as 0 */
		if (u < 0x80000000u && u > m)
			m = u;
	}
	atomicMax(dmax, m);
}

/*
 * Counts and fixed-point inertia per center: acc[2j] counts, acc[2j+1] inertia.  With few
 * centers a block first adds into shared memory, then once per center into global memory.
 */
static __global__ void
counts_kernel(const int32_t *labels, const float *dist, int64_t entries, int k,
			  const unsigned *dmax, int64_t rows, unsigned long long *acc)
{
	__shared__ unsigned long long sh[SHARED_SLOTS];
	int			local = 2 * k <= SHARED_SLOTS;
	double		scale = FixScale((double) __uint_as_float(*dmax), rows);
	unsigned long long *dst = local ? sh : acc;

	if (local)
		for (int q = threadIdx.x; q < 2 * k; q += blockDim.x)
			sh[q] = 0;
	__syncthreads();
	for (int64_t e = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; e < entries;
		 e += (int64_t) gridDim.x * blockDim.x)
	{
		int			j = labels[e];

		atomicAdd(&dst[2 * j], 1ULL);
		atomicAdd(&dst[2 * j + 1], Fix(dist[e], scale));
	}
	__syncthreads();
	if (local)
		for (int q = threadIdx.x; q < 2 * k; q += blockDim.x)
			if (sh[q] != 0)
				atomicAdd(&acc[q], sh[q]);
}

/* Fixed-point sums per center for narrow rows: one thread per (row, segment) entry. */
static __global__ void
sums_narrow_kernel(const float *x, int d, const int32_t *labels, int64_t entries, int nseg,
				   int k, double scale, unsigned long long *sums)
{
	__shared__ unsigned long long sh[SHARED_SLOTS];
	int			local = k * d <= SHARED_SLOTS;
	unsigned long long *dst = local ? sh : sums;

	if (local)
		for (int q = threadIdx.x; q < k * d; q += blockDim.x)
			sh[q] = 0;
	__syncthreads();
	for (int64_t e = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; e < entries;
		 e += (int64_t) gridDim.x * blockDim.x)
	{
		const float *r = x + (e / nseg) * d;
		unsigned long long *sp = dst + (int64_t) labels[e] * d;

		for (int t = 0; t < d; t++)
			atomicAdd(&sp[t], Fix(r[t], scale));
	}
	__syncthreads();
	if (local)
		for (int q = threadIdx.x; q < k * d; q += blockDim.x)
			if (sh[q] != 0)
				atomicAdd(&sums[q], sh[q]);
}

/*
 * Fixed-point sums per center for wide rows.  One atomic per entry and column would be
 * n * d atomics on k * d addresses (10^8 for 10^6 rows of 128), so the entries are grouped by
 * label first, a counting sort: the counts are counts_kernel's (at stride 2), their prefix
 * sums the groups' starts, and each entry takes the next place in its group.  A block then
 * walks a span of the grouped order, which holds one or two labels, adds each column of a run
 * of equal labels in a register and does one atomic per run and column.  The order inside a
 * group depends on the atomics; fixed-point sums do not depend on order, so the totals are
 * the same bits either way.
 */
#define GROUP_SPAN 256

/* Exclusive prefix sums of the k counts (counts[2j]) into cursor, by one block. */
static __global__ void
group_starts_kernel(const unsigned long long *counts, int k, unsigned long long *cursor)
{
	__shared__ unsigned long long sh[THREADS];
	unsigned long long carry = 0;

	for (int base = 0; base < k; base += blockDim.x)
	{
		int			j = base + threadIdx.x;
		unsigned long long v = j < k ? counts[2 * (int64_t) j] : 0;

		sh[threadIdx.x] = v;
		__syncthreads();
		for (int off = 1; off < (int) blockDim.x; off <<= 1)
		{
			unsigned long long add = threadIdx.x >= (unsigned) off ? sh[threadIdx.x - off] : 0;

			__syncthreads();
			sh[threadIdx.x] += add;
			__syncthreads();
		}
		if (j < k)
			cursor[j] = carry + sh[threadIdx.x] - v;
		carry += sh[blockDim.x - 1];
		__syncthreads();
	}
}

/* Each entry's place in the grouped order. */
static __global__ void
group_scatter_kernel(const int32_t *labels, int64_t entries, unsigned long long *cursor,
					 unsigned long long *order)
{
	for (int64_t e = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; e < entries;
		 e += (int64_t) gridDim.x * blockDim.x)
		order[atomicAdd(&cursor[labels[e]], 1ULL)] = (unsigned long long) e;
}

/* Sums over spans of GROUP_SPAN grouped entries, threads across columns. */
static __global__ void
sums_grouped_kernel(const float *x, int d, const int32_t *labels,
					const unsigned long long *order, int64_t entries, int nseg, double scale,
					unsigned long long *sums)
{
	for (int64_t lo = (int64_t) blockIdx.x * GROUP_SPAN; lo < entries;
		 lo += (int64_t) gridDim.x * GROUP_SPAN)
	{
		int64_t		hi = lo + GROUP_SPAN < entries ? lo + GROUP_SPAN : entries;

		for (int t = threadIdx.x; t < d; t += blockDim.x)
		{
			int32_t		cur = -1;
			unsigned long long run = 0;

			for (int64_t p = lo; p < hi; p++)
			{
				int64_t		e = (int64_t) order[p];
				int32_t		l = labels[e];

				if (l != cur)
				{
					if (cur >= 0)
						atomicAdd(&sums[(int64_t) cur * d + t], run);
					cur = l;
					run = 0;
				}
				run += Fix(x[(e / nseg) * d + t], scale);
			}
			if (cur >= 0)
				atomicAdd(&sums[(int64_t) cur * d + t], run);
		}
	}
}

/*
 * Enqueues the fixed-point accumulation of the device labels and distances of a block with
 * nseg segments over k centers into cb->acc (sums, then counts and inertia per center) and
 * its largest distance into cb->dmax.
 */
static KmStatus
AccumulateEnqueue(CudaBackend *cb, KmBlock *blk, const float *x, int nseg, int k, KmError *err)
{
	int			d = cb->base.d;
	int64_t		entries = blk->n * nseg;
	size_t		slots = (size_t) k * d + 2 * (size_t) k;
	unsigned long long *acc;
	KmStatus	st;

	if ((st = Reserve(cb, &cb->acc, sizeof(unsigned long long) * slots, "cluster sums", err)) != KM_OK ||
		(st = Reserve(cb, &cb->dmax, sizeof(unsigned), "cluster sums", err)) != KM_OK)
		return st;
	if (d > NARROW_D &&
		((st = Reserve(cb, &cb->order, sizeof(unsigned long long) * entries, "cluster sums", err)) != KM_OK ||
		 (st = Reserve(cb, &cb->cursor, sizeof(unsigned long long) * k, "cluster sums", err)) != KM_OK))
		return st;
	acc = (unsigned long long *) cb->acc.p;
	CUDA_TRY(cudaMemsetAsync(acc, 0, sizeof(unsigned long long) * slots, cb->stream));
	CUDA_TRY(cudaMemsetAsync(cb->dmax.p, 0, sizeof(unsigned), cb->stream));
	LAUNCH(max_dist_kernel, Blocks(entries, THREADS * 16), THREADS, (const float *) cb->dist.p,
		   entries, (unsigned *) cb->dmax.p);
	LAUNCH(counts_kernel, Blocks(entries, THREADS * 16), THREADS, (const int32_t *) cb->labels.p,
		   (const float *) cb->dist.p, entries, k, (const unsigned *) cb->dmax.p, blk->n,
		   acc + (size_t) k * d);
	if (d <= NARROW_D)
		LAUNCH(sums_narrow_kernel, Blocks(entries, THREADS * 16), THREADS, x, d,
			   (const int32_t *) cb->labels.p, entries, nseg, k,
			   FixScale(blk->maxabs, blk->n), acc);
	else
	{
		LAUNCH(group_starts_kernel, 1, THREADS, (const unsigned long long *) acc + (size_t) k * d,
			   k, (unsigned long long *) cb->cursor.p);
		LAUNCH(group_scatter_kernel, Blocks(entries, THREADS * 16), THREADS,
			   (const int32_t *) cb->labels.p, entries, (unsigned long long *) cb->cursor.p,
			   (unsigned long long *) cb->order.p);
		LAUNCH(sums_grouped_kernel, Blocks(entries, GROUP_SPAN),
			   d < THREADS ? ((d + 31) / 32) * 32 : THREADS, x, d, (const int32_t *) cb->labels.p,
			   (const unsigned long long *) cb->order.p, entries, nseg,
			   FixScale(blk->maxabs, blk->n), acc);
	}
	return KM_OK;
}

/* AccumulateEnqueue, and the copy of the block's totals to the host buffer (not waited for). */
static KmStatus
AccumulateDevice(CudaBackend *cb, KmBlock *blk, const float *x, int nseg, int k, KmError *err)
{
	size_t		slots = (size_t) k * cb->base.d + 2 * (size_t) k;
	KmStatus	st;

	if ((st = AccumulateEnqueue(cb, blk, x, nseg, k, err)) != KM_OK)
		return st;
	if (cb->host_acc_cap < slots + 1)
	{
		free(cb->host_acc);
		cb->host_acc = (unsigned long long *) malloc(sizeof(unsigned long long) * (slots + 1));
		cb->host_acc_cap = cb->host_acc ? slots + 1 : 0;
		if (cb->host_acc == NULL)
			return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate %zu cluster sums", slots);
	}
	CUDA_TRY(cudaMemcpyAsync(cb->host_acc, cb->acc.p, sizeof(unsigned long long) * slots,
							 cudaMemcpyDeviceToHost, cb->stream));
	CUDA_TRY(cudaMemcpyAsync(cb->host_acc + slots, cb->dmax.p, sizeof(unsigned),
							 cudaMemcpyDeviceToHost, cb->stream));
	return KM_OK;
}

/* Adds the host copy of the fixed-point totals into acc, once the stream has been waited for. */
static void
AccumulateHost(CudaBackend *cb, KmBlock *blk, KmAccum *acc)
{
	int			d = acc->d;
	int			k = acc->k;
	const unsigned long long *h = cb->host_acc;
	const unsigned long long *ci = h + (size_t) k * d;
	unsigned	dmax_bits;
	float		dmax;
	double		xs = 1.0 / FixScale(blk->maxabs, blk->n);
	double		ds;

	memcpy(&dmax_bits, h + (size_t) k * d + 2 * (size_t) k, sizeof(unsigned));
	memcpy(&dmax, &dmax_bits, sizeof(float));
	ds = 1.0 / FixScale((double) dmax, blk->n);
	for (size_t q = 0; q < (size_t) k * d; q++)
		acc->sums[q] += (double) (long long) h[q] * xs;
	for (int j = 0; j < k; j++)
	{
		acc->counts[j] += (int64_t) ci[2 * j];
		acc->inertia[j] += (double) (long long) ci[2 * j + 1] * ds;
	}
}

static KmStatus
CudaAccumulate(KmBackend *be, KmBlock *blk, int nseg, const int32_t *labels, const float *dist,
			   KmAccum *acc, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	size_t		entries = (size_t) blk->n * nseg;
	const float *x = NULL,
			   *norms = NULL;
	KmStatus	st;

	if (acc->d != be->d)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "accumulator of dimension %d for rows of %d",
					   acc->d, be->d);
	if (blk->n == 0)
		return KM_OK;
	if ((st = BlockRows(cb, blk, &x, &norms, err)) != KM_OK ||
		(st = Reserve(cb, &cb->labels, sizeof(int32_t) * entries, "labels", err)) != KM_OK ||
		(st = Reserve(cb, &cb->dist, sizeof(float) * entries, "distances", err)) != KM_OK)
		return st;
	CUDA_TRY(cudaMemcpyAsync(cb->labels.p, labels, sizeof(int32_t) * entries,
							 cudaMemcpyHostToDevice, cb->stream));
	CUDA_TRY(cudaMemcpyAsync(cb->dist.p, dist, sizeof(float) * entries, cudaMemcpyHostToDevice,
							 cb->stream));
	if ((st = AccumulateDevice(cb, blk, x, nseg, acc->k, err)) != KM_OK ||
		(st = Sync(cb, err)) != KM_OK)
		return st;
	AccumulateHost(cb, blk, acc);
	return KM_OK;
}

/* A Lloyd step for one block with a single wait: assign, accumulate, copy everything back. */
static KmStatus
CudaAssignAccumulate(KmBackend *be, KmBlock *blk, int32_t *labels, float *dist, int exact,
					 KmAccum *acc, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	const float *x;
	KmStatus	st;

	if (acc->d != be->d || acc->k != cb->k)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "accumulator for %d x %d, centers %d x %d",
					   acc->k, acc->d, cb->k, be->d);
	if (blk->n == 0)
		return KM_OK;
	if ((st = AssignDevice(cb, blk, exact, &x, err)) != KM_OK ||
		(st = AccumulateDevice(cb, blk, x, cb->nseg, cb->k, err)) != KM_OK ||
		(st = LabelsToHost(cb, blk, labels, dist, err)) != KM_OK ||
		(st = Sync(cb, err)) != KM_OK)
		return st;
	AccumulateHost(cb, blk, acc);
	return KM_OK;
}
