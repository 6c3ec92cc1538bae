/*
 * km_cuda_seed.cuh -- k-means++ steps: each row's distance to its nearest chosen center
 * (mindist), its sums per run of KM_SUB_ROWS rows, and the candidates' potentials; with
 * mindist copied in and out on each call (mindist_update, potentials) or kept on the device
 * (seed_begin, seed_update, seed_potentials, seed_fetch).
 *
 * CPU twin: CpuMindistUpdate and CpuPotentials (km_cpu.c, over CandRun).  Tested by
 * test/engine/test_cuda.c: RunCase "k-means++ steps" (mindist and run sums against the CPU,
 * two GPU potentials bit-identical; the seed_* operations, resident and streamed, bit for bit
 * the host-array ones) and TestStateMisuse (test_backend.h: seed_* misuse, a case worked by hand).
 *
 * Part of km_cuda.cu's unity build, included after km_cuda_pass.cuh.
 */

/* The k-means++ distance of a row to a center: |x - c|^2, or under IoU (1 - IoU)^2. */
static __device__ __forceinline__ float
SeedDist(int iou, const float *x, const float *c, int d)
{
	float		v = Cost(iou, x, c, d);

	return iou ? v * v : v;
}

/* k-means++: mind_out[i] = min(mind_in[i], |x_i - c|^2). */
static __global__ void
mindist_kernel(const float *x, int64_t n, int d, int iou, const float *c, const float *mind_in,
			   float *mind_out)
{
	for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < n;
		 i += (int64_t) gridDim.x * blockDim.x)
	{
		float		v = SeedDist(iou, x + i * d, c, d);
		float		m = mind_in[i];

		mind_out[i] = v < m ? v : m;
	}
}

/* The sum of each run of KM_SUB_ROWS values, in row order, in float64. */
static __global__ void
run_sums_kernel(const float *v, int64_t n, double *sums)
{
	int64_t		r = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;
	int64_t		runs = (n + KM_SUB_ROWS - 1) / KM_SUB_ROWS;

	if (r < runs)
	{
		int64_t		lo = r * KM_SUB_ROWS,
					hi = lo + KM_SUB_ROWS < n ? lo + KM_SUB_ROWS : n;
		double		s = 0.0;

		for (int64_t i = lo; i < hi; i++)
			s += v[i];
		sums[r] = s;
	}
}

/*
 * k-means++ trials: block (run, j) sums min(mindist, |x_i - cand_j|^2) over one run of rows,
 * the values gathered in shared memory and added by one thread in row order.
 */
static __global__ void
potentials_kernel(const float *x, int64_t n, int d, int iou, const float *cand, int t,
				  const float *mind, double *run_sums)
{
	__shared__ float vals[KM_SUB_ROWS];
	int64_t		run = blockIdx.x;
	int			j = blockIdx.y;
	int64_t		lo = run * KM_SUB_ROWS;
	int			m = (int) (n - lo < KM_SUB_ROWS ? n - lo : KM_SUB_ROWS);

	for (int q = threadIdx.x; q < m; q += blockDim.x)
	{
		float		v = SeedDist(iou, x + (lo + q) * d, cand + (int64_t) j * d, d);
		float		md = mind[lo + q];

		vals[q] = v < md ? v : md;
	}
	__syncthreads();
	if (threadIdx.x == 0)
	{
		double		s = 0.0;

		for (int q = 0; q < m; q++)
			s += vals[q];
		run_sums[run * t + j] = s;
	}
}

/*
 * k-means++.  The host-array operations copy mindist in (and out) on every call; the seed_*
 * operations keep it on the device (cb->seed_mind, one float per row of the data), so a step
 * moves only the candidates in and the run sums out.  Both enqueue the same kernels.
 */

/* Makes room for a step over a block with t candidates and copies the candidates over. */
static KmStatus
CandInputs(CudaBackend *cb, KmBlock *blk, const float *cand, int t, KmError *err)
{
	int			d = cb->base.d;
	int64_t		runs = (blk->n + KM_SUB_ROWS - 1) / KM_SUB_ROWS;
	KmStatus	st;

	if (runs > 65535 * 512 || t > 65535)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "k-means++: %lld runs of %d candidates",
					   (long long) runs, t);
	if ((st = Reserve(cb, &cb->cand, sizeof(float) * (size_t) t * d, "k-means++ candidates", err)) != KM_OK ||
		(st = Reserve(cb, &cb->run_sums, sizeof(double) * (size_t) runs * t, "k-means++ sums", err)) != KM_OK)
		return st;
	CUDA_TRY(cudaMemcpyAsync(cb->cand.p, cand, sizeof(float) * (size_t) t * d,
							 cudaMemcpyHostToDevice, cb->stream));
	return KM_OK;
}

/* mind_out = min(mind_in, |x - c|^2) over a block, and the run sums of mind_out to the host. */
static KmStatus
MindistSteps(CudaBackend *cb, KmBlock *blk, const float *c, const float *mind_in, float *mind_out,
			 double *sub_sums, KmError *err)
{
	int64_t		n = blk->n;
	int64_t		runs = (n + KM_SUB_ROWS - 1) / KM_SUB_ROWS;
	const float *x = NULL,
			   *norms = NULL;
	KmStatus	st;

	if ((st = BlockRows(cb, blk, &x, &norms, err)) != KM_OK ||
		(st = CandInputs(cb, blk, c, 1, err)) != KM_OK)
		return st;
	LAUNCH(mindist_kernel, Blocks(n, THREADS), THREADS, x, n, cb->base.d,
		   (int) (cb->base.metric == KM_METRIC_IOU), (const float *) cb->cand.p, mind_in, mind_out);
	LAUNCH(run_sums_kernel, Blocks(runs, 64), 64, (const float *) mind_out, n,
		   (double *) cb->run_sums.p);
	CUDA_TRY(cudaMemcpyAsync(sub_sums, cb->run_sums.p, sizeof(double) * runs,
							 cudaMemcpyDeviceToHost, cb->stream));
	return KM_OK;
}

/* pot[j] += the potential of candidate j over a block, mindist on the device at mind. */
static KmStatus
PotentialSteps(CudaBackend *cb, KmBlock *blk, const float *cand, int t, const float *mind,
			   double *pot, KmError *err)
{
	int64_t		n = blk->n;
	int64_t		runs = (n + KM_SUB_ROWS - 1) / KM_SUB_ROWS;
	const float *x = NULL,
			   *norms = NULL;
	double	   *sums;
	KmStatus	st;

	if ((st = BlockRows(cb, blk, &x, &norms, err)) != KM_OK ||
		(st = CandInputs(cb, blk, cand, t, err)) != KM_OK)
		return st;
	if ((sums = (double *) malloc(sizeof(double) * (size_t) runs * t)) == NULL)
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate %lld run sums", (long long) runs * t);
	KM_LAUNCH(potentials_kernel, dim3((unsigned) runs, (unsigned) t), THREADS, cb->stream, x, n,
			  cb->base.d, (int) (cb->base.metric == KM_METRIC_IOU), (const float *) cb->cand.p, t,
			  mind, (double *) cb->run_sums.p);
	if (cudaGetLastError() != cudaSuccess ||
		cudaMemcpyAsync(sums, cb->run_sums.p, sizeof(double) * (size_t) runs * t,
						cudaMemcpyDeviceToHost, cb->stream) != cudaSuccess)
		st = KM_FAIL(err, KM_ERR_DEVICE, "k-means++ potentials failed on the GPU");
	else
		st = Sync(cb, err);
	if (st == KM_OK)
		for (int64_t r = 0; r < runs; r++)
			for (int j = 0; j < t; j++)
				pot[j] += sums[r * t + j];
	free(sums);
	return st;
}

static KmStatus
CudaMindistUpdate(KmBackend *be, KmBlock *blk, const float *c, float *mindist, double *sub_sums,
				  KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	int64_t		n = blk->n;
	float	   *m;
	KmStatus	st;

	if (n == 0)
		return KM_OK;
	if ((st = Reserve(cb, &cb->mind, sizeof(float) * n, "k-means++ distances", err)) != KM_OK)
		return st;
	m = (float *) cb->mind.p;
	CUDA_TRY(cudaMemcpyAsync(m, mindist, sizeof(float) * n, cudaMemcpyHostToDevice, cb->stream));
	if ((st = MindistSteps(cb, blk, c, m, m, sub_sums, err)) != KM_OK)
		return st;
	CUDA_TRY(cudaMemcpyAsync(mindist, m, sizeof(float) * n, cudaMemcpyDeviceToHost, cb->stream));
	return Sync(cb, err);
}

static KmStatus
CudaPotentials(KmBackend *be, KmBlock *blk, const float *cand, int t, const float *mindist,
			   double *pot, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	int64_t		n = blk->n;
	KmStatus	st;

	if (n == 0 || t == 0)
		return KM_OK;
	if ((st = Reserve(cb, &cb->mind, sizeof(float) * n, "k-means++ distances", err)) != KM_OK)
		return st;
	CUDA_TRY(cudaMemcpyAsync(cb->mind.p, mindist, sizeof(float) * n, cudaMemcpyHostToDevice,
							 cb->stream));
	return PotentialSteps(cb, blk, cand, t, (const float *) cb->mind.p, pot, err);
}

/* +Inf in every entry, for a seeding that starts. */
static __global__ void
fill_inf_kernel(float *v, int64_t n)
{
	for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < n;
		 i += (int64_t) gridDim.x * blockDim.x)
		v[i] = INFINITY;
}

static KmStatus
DeviceSeedBegin(KmBackend *be, int64_t n, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	KmStatus	st;

	if (n < 1)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "seed_begin: n=%lld", (long long) n);
	/* a new seeding starts a new fit, whose first pass starts its labels afresh anyway */
	Release(cb, &cb->st_labels);
	Release(cb, &cb->st_dist);
	cb->st_n = 0;
	cb->st_nseg = 0;
	if (cb->seed_n != n)
	{
		Release(cb, &cb->seed_mind);
		cb->seed_n = 0;
		if ((st = DevAlloc(cb, &cb->seed_mind.p, sizeof(float) * n, "the k-means++ distances", err)) != KM_OK)
			return st;
		cb->seed_mind.cap = sizeof(float) * n;
		cb->seed_n = n;
	}
	LAUNCH(fill_inf_kernel, Blocks(n, THREADS), THREADS, (float *) cb->seed_mind.p, n);
	return KM_OK;
}

/* A seeding with mindist on the device, or in host memory where the device has no room. */
static KmStatus
CudaSeedBegin(KmBackend *be, int64_t n, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	KmStatus	st;

	/* a new seeding starts a new fit: the previous one's state gives its room back */
	km_host_state_free(&cb->host);
	cb->host_pass = 0;
	cb->host_seed = 0;
	st = DeviceSeedBegin(be, n, err);
	if (st != KM_ERR_DEVICE_NOMEM)
		return st;
	cb->host_seed = 1;
	return km_host_seed_begin(&cb->host, n, err);
}

static KmStatus
SeedRows(CudaBackend *cb, int64_t first, int64_t m, KmError *err)
{
	if (cb->seed_n == 0)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "k-means++ step before seed_begin");
	return km_rows_within("k-means++", first, m, cb->seed_n, err);
}

static KmStatus
CudaSeedUpdate(KmBackend *be, KmBlock *blk, int64_t first, const float *c, double *sub_sums,
			   KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	float	   *m;
	KmStatus	st;

	if (cb->host_seed)
		return km_host_seed_update(&cb->host, be, blk, first, blk->n, c, sub_sums, err);
	if ((st = SeedRows(cb, first, blk->n, err)) != KM_OK || blk->n == 0)
		return st;
	m = (float *) cb->seed_mind.p + first;
	if ((st = MindistSteps(cb, blk, c, m, m, sub_sums, err)) != KM_OK)
		return st;
	return Sync(cb, err);
}

static KmStatus
CudaSeedPotentials(KmBackend *be, KmBlock *blk, int64_t first, const float *cand, int t,
				   double *pot, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	KmStatus	st;

	if (cb->host_seed)
		return km_host_seed_potentials(&cb->host, be, blk, first, blk->n, cand, t, pot, err);
	if ((st = SeedRows(cb, first, blk->n, err)) != KM_OK || blk->n == 0 || t == 0)
		return st;
	return PotentialSteps(cb, blk, cand, t, (const float *) cb->seed_mind.p + first, pot, err);
}

static KmStatus
CudaSeedFetch(KmBackend *be, int64_t first, int64_t m, float *out, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	KmStatus	st;

	if (cb->host_seed)
		return km_host_seed_fetch(&cb->host, first, m, out, err);
	if ((st = SeedRows(cb, first, m, err)) != KM_OK || m == 0)
		return st;
	CUDA_TRY(cudaMemcpyAsync(out, (const float *) cb->seed_mind.p + first, sizeof(float) * m,
							 cudaMemcpyDeviceToHost, cb->stream));
	return Sync(cb, err);
}
