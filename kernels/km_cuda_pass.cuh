/*
 * km_cuda_pass.cuh -- Lloyd passes with each row's label and distance kept on the device
 * (pass_begin, pass_block per block, pass_end, state_fetch): changes counted and every block's
 * totals folded on the device, so an iteration waits once, in pass_end.  Where the device has
 * no room for the state, a fit's passes keep it in host memory instead (km_state.c, as the CPU
 * backend does) around assign_accumulate.
 *
 * CPU twin: the CPU backend's passes (km_cpu.c over km_state.c); fold_kernel does
 * AccumulateHost's arithmetic.  Tested by test/engine/test_cuda.c: RunPasses (totals, changed
 * counts and fetched state bit-identical to assign_accumulate with the state kept by the test,
 * resident and staged, with some segments converged, exact or not, and with the state in host
 * memory) and TestStateMisuse (test_backend.h: misuse refused, backend still usable).
 *
 * Part of km_cuda.cu's unity build, included after km_cuda_accum.cuh.
 */

/*
 * Lloyd passes with the state on the device: for entry e = (row i, installed segment r) of a
 * block starting at row first, compare the segment-local label with the state's, count the
 * changes per installed segment (in shared memory first where they fit), and store the new
 * label and distance.  Counts are integers, so the order of the additions does not matter.
 */
static __global__ void
changes_kernel(const int32_t *labels, const float *dist, int64_t entries, int nrun,
			   const int *seg_off, const int *segs, int st_nseg, int64_t first,
			   int32_t *st_labels, float *st_dist, unsigned long long *changed)
{
	__shared__ unsigned long long sh[SHARED_SLOTS];
	int			local = nrun <= SHARED_SLOTS;
	unsigned long long *dst = local ? sh : changed;

	if (local)
		for (int q = threadIdx.x; q < nrun; q += blockDim.x)
			sh[q] = 0;
	__syncthreads();
	for (int64_t e = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; e < entries;
		 e += (int64_t) gridDim.x * blockDim.x)
	{
		int			r = (int) (e % nrun);
		int32_t		lab = labels[e] - seg_off[r];
		int64_t		at = (first + e / nrun) * st_nseg + segs[r];

		if (st_labels[at] != lab)
		{
			atomicAdd(&dst[r], 1ULL);
			st_labels[at] = lab;
		}
		st_dist[at] = dist[e];
	}
	__syncthreads();
	if (local)
		for (int q = threadIdx.x; q < nrun; q += blockDim.x)
			if (sh[q] != 0)
				atomicAdd(&changed[q], sh[q]);
}

/*
 * Adds a block's fixed-point totals into the pass's float64 ones, one thread per slot, in the
 * order the blocks were enqueued: the same arithmetic, value for value, as AccumulateHost.
 */
static __global__ void
fold_kernel(const unsigned long long *acc, int k, int d, double xs, const unsigned *dmax,
			int64_t rows, double *sums, double *inertia, unsigned long long *counts)
{
	int64_t		kd = (int64_t) k * d;
	double		ds = 1.0 / FixScale((double) __uint_as_float(*dmax), rows);

	for (int64_t q = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; q < kd + k;
		 q += (int64_t) gridDim.x * blockDim.x)
	{
		if (q < kd)
			sums[q] += (double) (long long) acc[q] * xs;
		else
		{
			int64_t		j = q - kd;

			counts[j] += acc[kd + 2 * j];
			inertia[j] += (double) (long long) acc[kd + 2 * j + 1] * ds;
		}
	}
}

/*
 * Lloyd passes with the state on the device.  A pass is enqueued block by block, nothing
 * waited for until pass_end; the totals of the pass are float64 on the device, in the layout
 * sums (k * d), inertia (k), counts (k), changed (nseg of the installed centers).
 */
static KmStatus
DevicePassBegin(KmBackend *be, int64_t n, int nseg, const int *segs, int reset, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	size_t		slots = (size_t) cb->k * be->d + 2 * (size_t) cb->k + (size_t) cb->nseg;
	KmStatus	st;

	cb->pass_open = 0;
	if (cb->k == 0)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "pass_begin before set_centers");
	if (n < 1 || nseg < 1)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "pass_begin: n=%lld nseg=%d", (long long) n, nseg);
	for (int r = 0; r < cb->nseg; r++)
		if (segs[r] < 0 || segs[r] >= nseg)
			return KM_FAIL(err, KM_ERR_ARGUMENT, "pass_begin: segment %d maps to %d of %d", r,
						   segs[r], nseg);
	/* the seeding is over once the passes begin: its distances give their room back */
	Release(cb, &cb->seed_mind);
	cb->seed_n = 0;
	if (cb->st_n != n || cb->st_nseg != nseg)
	{
		size_t		entries = (size_t) n * nseg;

		/* exactly the size asked for: the state can be the largest thing on the device */
		Release(cb, &cb->st_labels);
		Release(cb, &cb->st_dist);
		cb->st_n = 0;
		cb->st_nseg = 0;
		if ((st = DevAlloc(cb, &cb->st_labels.p, sizeof(int32_t) * entries, "the rows' labels", err)) != KM_OK)
			return st;
		cb->st_labels.cap = sizeof(int32_t) * entries;
		if ((st = DevAlloc(cb, &cb->st_dist.p, sizeof(float) * entries, "the rows' labels", err)) != KM_OK)
		{
			Release(cb, &cb->st_labels);
			return st;
		}
		cb->st_dist.cap = sizeof(float) * entries;
		cb->st_n = n;
		cb->st_nseg = nseg;
		reset = 1;
	}
	if ((st = Reserve(cb, &cb->pass_acc, sizeof(double) * slots, "cluster sums", err)) != KM_OK ||
		(st = Reserve(cb, &cb->pass_segs, sizeof(int) * cb->nseg, "cluster sums", err)) != KM_OK ||
		(st = HostReserve(cb, &cb->pass_host, sizeof(double) * slots, err)) != KM_OK)
	{
		/* a caller that keeps the labels itself now needs the room the state took */
		Release(cb, &cb->st_labels);
		Release(cb, &cb->st_dist);
		cb->st_n = 0;
		cb->st_nseg = 0;
		return st;
	}
	if (reset)
		CUDA_TRY(cudaMemsetAsync(cb->st_labels.p, 0xff, sizeof(int32_t) * (size_t) n * nseg,
								 cb->stream));
	CUDA_TRY(cudaMemsetAsync(cb->pass_acc.p, 0, sizeof(double) * slots, cb->stream));
	CUDA_TRY(cudaMemcpyAsync(cb->pass_segs.p, segs, sizeof(int) * cb->nseg,
							 cudaMemcpyHostToDevice, cb->stream));
	cb->pass_open = 1;
	cb->pass_blocks = 0;
	return KM_OK;
}

/*
 * Opens a pass with the state on the device, or in host memory when a fit's first pass finds
 * no room on the device; the fit's later passes then stay in host memory (its state is there).
 * A pass without keep keeps its state on the device where there is room (device memory, not
 * the host's), and else goes through host memory with no state at all.
 */
static KmStatus
CudaPassBegin(KmBackend *be, int64_t n, int nseg, const int *segs, int reset, int exact,
			  int keep, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	KmStatus	st;

	cb->pass_exact = exact;
	if (cb->host_pass && (!keep || (!reset && cb->host.n == n && cb->host.nseg == nseg)))
		return km_host_pass_begin(&cb->host, n, nseg, segs, cb->nseg, cb->seg_off, be->d,
								  !keep, exact, keep, err);
	/* host memory held no state of these rows: the device's starts afresh */
	if (cb->host_pass)
		reset = 1;
	km_host_state_free(&cb->host);
	cb->host_pass = 0;
	cb->host_seed = 0;
	/* a pass without state reads no labels from before it: it starts afresh too */
	reset |= !keep;
	st = DevicePassBegin(be, n, nseg, segs, reset, err);
	if (st != KM_ERR_DEVICE_NOMEM || !reset)
		return st;
	/* the device state gave its room back when it failed */
	cb->host_pass = 1;
	return km_host_pass_begin(&cb->host, n, nseg, segs, cb->nseg, cb->seg_off, be->d, 1, exact,
							  keep, err);
}

static KmStatus
CudaPassBlock(KmBackend *be, KmBlock *blk, int64_t first, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	int			d = be->d;
	int			k = cb->k;
	int64_t		kd = (int64_t) k * d;
	int64_t		entries = blk->n * cb->nseg;
	double	   *sums = (double *) cb->pass_acc.p;
	const float *x;
	KmStatus	st;

	if (cb->host_pass)
		return km_host_pass_block(&cb->host, be, blk, first, blk->n, err);
	if (!cb->pass_open)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "pass_block outside a pass");
	if ((st = km_rows_within("pass_block", first, blk->n, cb->st_n, err)) != KM_OK)
		return st;
	if (blk->n == 0)
		return KM_OK;

	/*
	 * The host stays at most two blocks ahead of the device: the device always has the next
	 * block queued, and a cancel (checked by the caller between blocks) never waits for more
	 * than two blocks of work, however large the data.
	 */
	if (cb->pass_blocks >= 2)
		CUDA_TRY(cudaEventSynchronize(cb->pass_done[cb->pass_blocks % 2]));
	if ((st = AssignDevice(cb, blk, cb->pass_exact, &x, err)) != KM_OK)
		return st;
	LAUNCH(changes_kernel, Blocks(entries, THREADS * 16), THREADS, (const int32_t *) cb->labels.p,
		   (const float *) cb->dist.p, entries, cb->nseg, (const int *) cb->dseg_off.p,
		   (const int *) cb->pass_segs.p, cb->st_nseg, first, (int32_t *) cb->st_labels.p,
		   (float *) cb->st_dist.p, (unsigned long long *) (sums + kd + 2 * k));
	if ((st = AccumulateEnqueue(cb, blk, x, cb->nseg, k, err)) != KM_OK)
		return st;
	LAUNCH(fold_kernel, Blocks(kd + k, THREADS), THREADS, (const unsigned long long *) cb->acc.p,
		   k, d, 1.0 / FixScale(blk->maxabs, blk->n), (const unsigned *) cb->dmax.p, blk->n, sums,
		   sums + kd, (unsigned long long *) (sums + kd + k));
	CUDA_TRY(cudaEventRecord(cb->pass_done[cb->pass_blocks % 2], cb->stream));
	cb->pass_blocks++;
	return KM_OK;
}

static KmStatus
CudaPassEnd(KmBackend *be, KmAccum *acc, int64_t *changed, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	int			k = cb->k;
	int64_t		kd = (int64_t) k * be->d;
	size_t		slots = (size_t) kd + 2 * (size_t) k + (size_t) cb->nseg;
	const double *h = (const double *) cb->pass_host.p;
	const unsigned long long *hc = (const unsigned long long *) (h + kd + k);
	KmStatus	st;

	if (cb->host_pass)
		return km_host_pass_end(&cb->host, acc, changed, err);
	if (!cb->pass_open)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "pass_end outside a pass");
	cb->pass_open = 0;
	if (acc->d != be->d || acc->k != k)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "accumulator for %d x %d, centers %d x %d",
					   acc->k, acc->d, k, be->d);
	CUDA_TRY(cudaMemcpyAsync(cb->pass_host.p, cb->pass_acc.p, sizeof(double) * slots,
							 cudaMemcpyDeviceToHost, cb->stream));
	if ((st = Sync(cb, err)) != KM_OK)
		return st;
	for (int64_t q = 0; q < kd; q++)
		acc->sums[q] += h[q];
	for (int j = 0; j < k; j++)
	{
		acc->inertia[j] += h[kd + j];
		acc->counts[j] += (int64_t) hc[j];
	}
	for (int r = 0; r < cb->nseg; r++)
		changed[r] = (int64_t) hc[k + r];
	return KM_OK;
}

static KmStatus
CudaStateFetch(KmBackend *be, int64_t first, int64_t m, int32_t *labels, float *dist,
			   KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	size_t		at = (size_t) first * cb->st_nseg;
	size_t		entries = (size_t) m * cb->st_nseg;
	KmStatus	st;

	if (cb->host_pass)
		return km_host_state_fetch(&cb->host, first, m, labels, dist, err);
	if (cb->st_n == 0)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "state_fetch before any pass");
	if ((st = km_rows_within("state_fetch", first, m, cb->st_n, err)) != KM_OK)
		return st;
	if (m == 0)
		return KM_OK;
	CUDA_TRY(cudaMemcpyAsync(labels, (const int32_t *) cb->st_labels.p + at,
							 sizeof(int32_t) * entries, cudaMemcpyDeviceToHost, cb->stream));
	CUDA_TRY(cudaMemcpyAsync(dist, (const float *) cb->st_dist.p + at, sizeof(float) * entries,
							 cudaMemcpyDeviceToHost, cb->stream));
	return Sync(cb, err);
}
