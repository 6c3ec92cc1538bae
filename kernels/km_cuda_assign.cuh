/*
 * km_cuda_assign.cuh -- the nearest center of each row in each segment: direct distances
 * through shared memory for small d, cuBLAS scores and a warp argmin for large d, and the
 * exact distances recomputed on request.
 *
 * CPU twin: CpuAssign (km_cpu.c) over km_argmin_ref and km_argmin_small (km_argmin.c) and
 * km_gemm_argmin (km_gemm.c); Dist2 is km_argmin.c's Dist2.  Tested by test/engine/test_cuda.c,
 * RunCase "assign, expanded and exact distances": labels within 1e-4 of the rows and distances
 * within 1e-5 of the CPU's (small d: the same labels), two GPU runs and a streamed block
 * bit-identical.
 *
 * Part of km_cuda.cu's unity build, included after km_cuda_state.cuh.
 */

/* Squared distance of row x to center c, summed in index order, as the CPU's direct kernel. */
static __device__ __forceinline__ float
Dist2(const float *x, const float *c, int d)
{
	float		diff = x[0] - c[0];
	float		sum = diff * diff;

	for (int t = 1; t < d; t++)
	{
		diff = x[t] - c[t];
		sum = __fmaf_rn(diff, diff, sum);
	}
	return sum;
}

/* km_iou_cost (km_kernels.h) on the device: 1 - IoU of boxes (w, h) at a common corner. */
static __device__ __forceinline__ float
IouCost(const float *x, const float *c)
{
	float		iw = x[0] < c[0] ? x[0] : c[0];
	float		ih = x[1] < c[1] ? x[1] : c[1];
	float		inter = __fmul_rn(iw, ih);
	float		uni = __fmaf_rn(x[0], x[1], __fmaf_rn(c[0], c[1], -inter));

	return __fsub_rn(1.0f, __fdiv_rn(inter, uni));
}

/* A row's cost to a center: its squared distance, or under IoU (d = 2) 1 - IoU. */
static __device__ __forceinline__ float
Cost(int iou, const float *x, const float *c, int d)
{
	return iou ? IouCost(x, c) : Dist2(x, c, d);
}

/*
 * Small d: nearest center per segment by direct distances (or IoU costs), one thread per row, the centers
 * staged through shared memory in tiles.  Segments are contiguous runs of centers, so walking
 * all centers once in order serves every segment; ties go to the lowest index.
 */
static __global__ void
assign_direct_kernel(const float *x, int64_t n, int d, int iou, const float *c, int k, int nseg,
					 const int *seg_off, int32_t *labels, float *dist)
{
	__shared__ float tile[TILE_FLOATS];
	int64_t		i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;
	int			live = i < n;
	int			per = TILE_FLOATS / d;
	float		xr[KM_SMALL_D_MAX];
	int			s = 0;
	int			seg_end = seg_off[1];
	float		best = INFINITY;
	int			arg = seg_off[0];

	for (int t = 0; t < d; t++)
		xr[t] = live ? x[i * d + t] : 0.0f;
	for (int j0 = 0; j0 < k; j0 += per)
	{
		int			m = k - j0 < per ? k - j0 : per;

		__syncthreads();
		for (int q = threadIdx.x; q < m * d; q += blockDim.x)
			tile[q] = c[(int64_t) j0 * d + q];
		__syncthreads();
		if (!live)
			continue;
		for (int jj = 0; jj < m; jj++)
		{
			int			j = j0 + jj;
			float		v;

			while (j >= seg_end)
			{
				labels[i * nseg + s] = arg;
				dist[i * nseg + s] = best;
				s++;
				seg_end = seg_off[s + 1];
				best = INFINITY;
				arg = seg_off[s];
			}
			v = Cost(iou, xr, tile + jj * d, d);
			if (v < best)
			{
				best = v;
				arg = j;
			}
		}
	}
	if (live)
	{
		labels[i * nseg + s] = arg;
		dist[i * nseg + s] = best;
	}
}

/*
 * Large d, after the GEMM: scores[r * k + j] = x_r . c_j for a tile of rows.  A block takes 8
 * rows, a warp's worth of lanes per row; each lane keeps the best of its strided centers and
 * the lanes are reduced through shared memory, lowest index winning ties.  The squared
 * distance is |x|^2 + |c|^2 - 2 x.c, clamped at zero.
 */
static __global__ void
argmin_scores_kernel(const float *scores, int rows, int k, const float *xnorm, const float *cnorm,
					 int nseg, const int *seg_off, int32_t *labels, float *dist)
{
	__shared__ float sb[THREADS];
	__shared__ int sa[THREADS];
	int			lane = threadIdx.x & 31;
	int			r = blockIdx.x * (THREADS / 32) + (threadIdx.x >> 5);
	int			live = r < rows;

	for (int s = 0; s < nseg; s++)
	{
		float		best = INFINITY;
		int			arg = INT_MAX;

		if (live)
			for (int j = seg_off[s] + lane; j < seg_off[s + 1]; j += 32)
			{
				float		v = __fmaf_rn(-2.0f, scores[(int64_t) r * k + j], cnorm[j]);

				if (v < best)
				{
					best = v;
					arg = j;
				}
			}
		sb[threadIdx.x] = best;
		sa[threadIdx.x] = arg;
		__syncthreads();
		for (int w = 16; w >= 1; w >>= 1)
		{
			if (lane < w)
			{
				float		ob = sb[threadIdx.x + w];
				int			oa = sa[threadIdx.x + w];

				if (ob < sb[threadIdx.x] || (ob == sb[threadIdx.x] && oa < sa[threadIdx.x]))
				{
					sb[threadIdx.x] = ob;
					sa[threadIdx.x] = oa;
				}
			}
			__syncthreads();
		}
		if (live && lane == 0)
		{
			float		d2 = xnorm[r] + sb[threadIdx.x];

			labels[(int64_t) r * nseg + s] = sa[threadIdx.x];
			dist[(int64_t) r * nseg + s] = d2 > 0.0f ? d2 : 0.0f;
		}
		__syncthreads();
	}
}

/* Replaces each distance by the one summed directly from the row and its center. */
static __global__ void
exact_dist_kernel(const float *x, int64_t n, int d, const float *c, int nseg,
				  const int32_t *labels, float *dist)
{
	for (int64_t e = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; e < n * nseg;
		 e += (int64_t) gridDim.x * blockDim.x)
		dist[e] = Dist2(x + (e / nseg) * d, c + (int64_t) labels[e] * d, d);
}

/* Enqueues the assignment of a block into the device labels and distances. */
static KmStatus
AssignDevice(CudaBackend *cb, KmBlock *blk, int exact, const float **xout, KmError *err)
{
	int			d = cb->base.d;
	int			nseg = cb->nseg;
	int64_t		n = blk->n;
	const float *x = NULL,
			   *norms = NULL;
	int32_t    *labels;
	float	   *dist;
	KmStatus	st;

	if (cb->k == 0)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "assign before set_centers");
	if ((st = BlockRows(cb, blk, &x, &norms, err)) != KM_OK ||
		(st = Reserve(cb, &cb->labels, sizeof(int32_t) * n * nseg, "labels", err)) != KM_OK ||
		(st = Reserve(cb, &cb->dist, sizeof(float) * n * nseg, "distances", err)) != KM_OK)
		return st;
	labels = (int32_t *) cb->labels.p;
	dist = (float *) cb->dist.p;
	*xout = x;
	if (!km_use_gemm(d, cb->k))
	{
		LAUNCH(assign_direct_kernel, Blocks(n, THREADS), THREADS, x, n, d,
			   (int) (cb->base.metric == KM_METRIC_IOU), (const float *) cb->dc.p, cb->k, nseg, (const int *) cb->dseg_off.p, labels, dist);
		return KM_OK;
	}

	{
		int64_t		tile = (int64_t) (SCORE_FLOATS / (size_t) cb->k);

		if (tile > n)
			tile = n;
		if (tile < 8)
			tile = 8;
		if ((st = Reserve(cb, &cb->scores, sizeof(float) * (size_t) tile * cb->k, "GEMM scores",
						  err)) != KM_OK)
			return st;
		for (int64_t r0 = 0; r0 < n; r0 += tile)
		{
			int			rows = (int) (n - r0 < tile ? n - r0 : tile);
			int			bst = cb->blas.sgemm_tn(cb->blas_handle, cb->k, rows, d,
												(const float *) cb->dc.p, d, x + r0 * d, d,
												(float *) cb->scores.p, cb->k);

			if (bst != 0)
				return KM_FAIL(err, KM_ERR_DEVICE, "cublasSgemm failed with status %d", bst);
			LAUNCH(argmin_scores_kernel, Blocks(rows, THREADS / 32), THREADS,
				   (const float *) cb->scores.p, rows, cb->k, norms + r0,
				   (const float *) cb->dcnorm.p, nseg, (const int *) cb->dseg_off.p,
				   labels + r0 * nseg, dist + r0 * nseg);
		}
	}
	if (exact)
		LAUNCH(exact_dist_kernel, Blocks(n * nseg, THREADS), THREADS, x, n, d,
			   (const float *) cb->dc.p, nseg, (const int32_t *) labels, dist);
	return KM_OK;
}

/* Copies a block's labels and distances back to the host (not yet waited for). */
static KmStatus
LabelsToHost(CudaBackend *cb, KmBlock *blk, int32_t *labels, float *dist, KmError *err)
{
	size_t		entries = (size_t) blk->n * cb->nseg;

	CUDA_TRY(cudaMemcpyAsync(labels, cb->labels.p, sizeof(int32_t) * entries,
							 cudaMemcpyDeviceToHost, cb->stream));
	CUDA_TRY(cudaMemcpyAsync(dist, cb->dist.p, sizeof(float) * entries, cudaMemcpyDeviceToHost,
							 cb->stream));
	return KM_OK;
}

static KmStatus
CudaAssign(KmBackend *be, KmBlock *blk, int32_t *labels, float *dist, int exact, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	const float *x;
	KmStatus	st;

	if (blk->n == 0)
		return KM_OK;
	if ((st = AssignDevice(cb, blk, exact, &x, err)) != KM_OK ||
		(st = LabelsToHost(cb, blk, labels, dist, err)) != KM_OK)
		return st;
	return Sync(cb, err);
}
