/*
 * km_cuda_state.cuh -- the backend's memory: every device allocation charged to the budget,
 * device buffers that grow on demand, host buffers pinned where the driver allows, the two
 * staging slots a block that is not resident goes through, blocks and the installed centers.
 *
 * CPU twin: CpuBlockCreate, CpuBlockDestroy and CpuSetCenters (km_cpu.c); row_norms_kernel is
 * km_row_norms (km_argmin.c).  Tested by test/engine/test_cuda.c: RunCase (rows centred as the
 * CPU centres them; a streamed block gives the resident one's bits), RunOnBackends (a budget
 * nearly used up, so that blocks stream), TestBudget (an allocation over the budget fails
 * with both sizes) and main's KM_EMU_NO_PINNED run (pageable staging, the same results).
 *
 * Part of km_cuda.cu's unity build, included after km_cuda_blas.cuh.
 */

/* Allocates bytes of device memory charged to the budget. */
static KmStatus
DevAlloc(CudaBackend *cb, void **p, size_t bytes, const char *what, KmError *err)
{
	cudaError_t e;

	*p = NULL;
	if (bytes > cb->budget - cb->used)
		return KM_FAIL(err, KM_ERR_DEVICE_NOMEM,
					   "%s needs %.1f MB of GPU memory; %.1f MB of the %.1f MB budget are in use",
					   what, bytes / 1048576.0, cb->used / 1048576.0, cb->budget / 1048576.0);
	e = cudaMalloc(p, bytes ? bytes : 1);
	if (e != cudaSuccess)
	{
		*p = NULL;
		return km_fail(err, KM_ERR_DEVICE_NOMEM, __FILE__, __LINE__,
					   "cudaMalloc of %.1f MB for %s: %s", bytes / 1048576.0, what,
					   cudaGetErrorString(e));
	}
	cb->used += bytes;
	return KM_OK;
}

static void
DevFree(CudaBackend *cb, void *p, size_t bytes)
{
	if (p == NULL)
		return;
	cudaFree(p);
	cb->used -= bytes;
}

/* Makes buf hold at least bytes; its old contents are lost. */
static KmStatus
Reserve(CudaBackend *cb, DevBuf *buf, size_t bytes, const char *what, KmError *err)
{
	KmStatus	st;

	if (buf->cap >= bytes && buf->p != NULL)
		return KM_OK;
	DevFree(cb, buf->p, buf->cap);
	buf->p = NULL;
	buf->cap = 0;
	/* grow by half again, where that fits, so a slowly growing need does not reallocate often */
	if (bytes + bytes / 2 <= cb->budget - cb->used)
		bytes += bytes / 2;
	if ((st = DevAlloc(cb, &buf->p, bytes, what, err)) != KM_OK)
		return st;
	buf->cap = bytes;
	return KM_OK;
}

static void
Release(CudaBackend *cb, DevBuf *buf)
{
	DevFree(cb, buf->p, buf->cap);
	buf->p = NULL;
	buf->cap = 0;
}

static void
HostRelease(HostBuf *buf)
{
	if (buf->p == NULL)
		return;
	if (buf->pinned)
		cudaFreeHost(buf->p);
	else
		free(buf->p);
	buf->p = NULL;
	buf->cap = 0;
	buf->pinned = 0;
}

/*
 * Makes buf hold at least bytes of host memory, its old contents lost: pinned, or pageable
 * where the driver refuses to pin (copies then still work, through the driver's own staging).
 */
static KmStatus
HostReserve(CudaBackend *cb, HostBuf *buf, size_t bytes, KmError *err)
{
	if (buf->cap >= bytes && buf->p != NULL)
		return KM_OK;
	HostRelease(buf);
	if (!cb->no_pin)
	{
		if (cudaMallocHost(&buf->p, bytes ? bytes : 1) == cudaSuccess)
		{
			buf->cap = bytes;
			buf->pinned = 1;
			return KM_OK;
		}
		buf->p = NULL;
		(void) cudaGetLastError();	/* not sticky: clear it */
		cb->no_pin = 1;
	}
	if ((buf->p = malloc(bytes ? bytes : 1)) == NULL)
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate %.1f MB of host staging memory",
					   bytes / 1048576.0);
	buf->cap = bytes;
	return KM_OK;
}

/* Waits for the stream: the one host synchronisation of an operation. */
static KmStatus
Sync(CudaBackend *cb, KmError *err)
{
	CUDA_TRY(cudaStreamSynchronize(cb->stream));
	return KM_OK;
}

static inline unsigned
Blocks(int64_t work, int per)
{
	int64_t		b = (work + per - 1) / per;

	return (unsigned) (b < 1 ? 1 : (b > 65535 * 512 ? 65535 * 512 : b));
}

/* |x_i|^2 per row, as km_row_norms. */
static __global__ void
row_norms_kernel(const float *x, int64_t n, int d, float *norms)
{
	for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < n;
		 i += (int64_t) gridDim.x * blockDim.x)
	{
		const float *r = x + i * d;
		float		s = r[0] * r[0];

		for (int t = 1; t < d; t++)
			s = __fmaf_rn(r[t], r[t], s);
		norms[i] = s;
	}
}

/*
 * The device rows and norms of a block: its own copy, or a staging slot.  A block that is
 * still in the slot it was last copied to is used from there; otherwise the other slot is
 * filled: the rows go into its pinned buffer (once the copy out of that buffer two fillings
 * ago is done) and are copied to the device asynchronously, so the caller goes on while they
 * travel.
 */
static KmStatus
BlockRows(CudaBackend *cb, KmBlock *blk, const float **x, const float **norms, KmError *err)
{
	int			d = cb->base.d;
	size_t		bytes = sizeof(float) * (size_t) blk->n * d;
	int			s = blk->stage_slot;
	KmStatus	st;

	if (blk->dx != NULL)
	{
		*x = blk->dx;
		*norms = blk->dnorm;
		return KM_OK;
	}
	if (s < 0 || cb->slot_serial[s] != blk->stage_serial)
	{
		s = cb->next_slot;
		cb->next_slot ^= 1;
		/* forget the slot's contents first: a failure below leaves it half filled */
		cb->slot_serial[s] = 0;
		if ((st = Reserve(cb, &cb->stage_x[s], bytes, "a streamed block", err)) != KM_OK ||
			(st = Reserve(cb, &cb->stage_norm[s], sizeof(float) * blk->n, "a streamed block", err)) != KM_OK)
			return st;
		CUDA_TRY(cudaEventSynchronize(cb->pin_free[s]));
		if ((st = HostReserve(cb, &cb->pin[s], bytes, err)) != KM_OK)
			return st;
		memcpy(cb->pin[s].p, blk->hx, bytes);
		CUDA_TRY(cudaMemcpyAsync(cb->stage_x[s].p, cb->pin[s].p, bytes, cudaMemcpyHostToDevice,
								 cb->stream));
		CUDA_TRY(cudaEventRecord(cb->pin_free[s], cb->stream));
		LAUNCH(row_norms_kernel, Blocks(blk->n, THREADS), THREADS,
			   (const float *) cb->stage_x[s].p, blk->n, d, (float *) cb->stage_norm[s].p);
		blk->stage_slot = s;
		blk->stage_serial = cb->slot_serial[s] = ++cb->serial;
	}
	*x = (const float *) cb->stage_x[s].p;
	*norms = (const float *) cb->stage_norm[s].p;
	return KM_OK;
}

static void CudaBlockDestroy(KmBackend *be, KmBlock *blk);

/*
 * Centres the rows on the host in place (as the CPU backend does, so both see the same
 * values), then, for a block that is kept, copies them to the device when they fit the budget.
 * Other blocks go through the staging slots; a batch (not kept) starts its copy at once.
 */
static KmStatus
BlockMake(KmBackend *be, float *x, int64_t n, const float *shift, int keep, KmBlock **out,
		  KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	int			d = be->d;
	KmBlock    *blk = (KmBlock *) calloc(1, sizeof(KmBlock));
	size_t		bytes = (sizeof(float) * (size_t) d + sizeof(float)) * (size_t) n;
	double		maxabs = 0.0;
	KmStatus	st;

	if (blk == NULL)
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate a block");
	for (int64_t i = 0; i < n; i++)
		for (int t = 0; t < d; t++)
		{
			float	   *v = x + i * d + t;

			if (shift)
				*v -= shift[t];
			if (fabs(*v) > maxabs)
				maxabs = fabs(*v);
		}
	blk->n = n;
	blk->hx = x;
	blk->maxabs = maxabs;
	blk->stage_slot = -1;
	*out = blk;
	if (n == 0)
		return KM_OK;
	if (!keep)
	{
		const float *dx,
				   *dnorm;

		if ((st = BlockRows(cb, blk, &dx, &dnorm, err)) != KM_OK)
			goto fail;
		return KM_OK;
	}
	/* resident when the block and a GEMM tile's worth of scratch still fit */
	if (bytes + (cb->budget / 8) <= cb->budget - cb->used)
	{
		void	   *p;

		if ((st = DevAlloc(cb, &p, bytes, "a resident block", err)) != KM_OK)
			goto fail;
		blk->bytes = bytes;
		blk->dx = (float *) p;
		blk->dnorm = blk->dx + (size_t) n * d;
		if (cudaMemcpyAsync(blk->dx, x, sizeof(float) * n * d, cudaMemcpyHostToDevice,
							cb->stream) != cudaSuccess)
		{
			st = KM_FAIL(err, KM_ERR_DEVICE, "could not copy a block to the GPU");
			goto fail;
		}
		KM_LAUNCH(row_norms_kernel, Blocks(n, THREADS), THREADS, cb->stream,
				  (const float *) blk->dx, n, d, blk->dnorm);
		if ((st = Sync(cb, err)) != KM_OK)
			goto fail;
	}
	return KM_OK;
fail:
	CudaBlockDestroy(be, blk);
	*out = NULL;
	return st;
}

/*
 * Weighted rows are not implemented on the device yet: the fixed-point sums (km_cuda_accum.cuh)
 * would need a bound on w x, and the seeding kernels a weight per row.  The engine runs a
 * weighted fit on the CPU backend; this refusal keeps a caller that asks anyway from getting
 * unweighted sums.
 */
static KmStatus
Unweighted(const float *w, KmError *err)
{
	if (w != NULL)
		return KM_FAIL(err, KM_ERR_UNSUPPORTED, "the GPU backend does not weigh rows");
	return KM_OK;
}

static KmStatus
CudaBlockCreate(KmBackend *be, float *x, const float *w, int64_t n, const float *shift,
				KmBlock **out, KmError *err)
{
	KmStatus	st = Unweighted(w, err);

	return st != KM_OK ? st : BlockMake(be, x, n, shift, 1, out, err);
}

static KmStatus
CudaBatchCreate(KmBackend *be, float *x, const float *w, int64_t n, const float *shift,
				KmBlock **out, KmError *err)
{
	KmStatus	st = Unweighted(w, err);

	return st != KM_OK ? st : BlockMake(be, x, n, shift, 0, out, err);
}

static void
CudaBlockDestroy(KmBackend *be, KmBlock *blk)
{
	CudaBackend *cb = (CudaBackend *) be;

	if (blk == NULL)
		return;
	DevFree(cb, blk->dx, blk->bytes);
	free(blk);
}

/* Copies the centers and their segments to the device and computes their norms there. */
static KmStatus
CudaSetCenters(KmBackend *be, const float *c, int d, int nseg, const int *seg_off, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	int			k = seg_off[nseg];
	int		   *so;
	KmStatus	st;

	if (d != be->d || nseg < 1 || k < 1)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "bad center set: d=%d nseg=%d k=%d", d, nseg, k);
	if ((so = (int *) malloc(sizeof(int) * (nseg + 1))) == NULL)
		return KM_FAIL(err, KM_ERR_NOMEM, "could not allocate %d segments", nseg);
	free(cb->seg_off);
	cb->seg_off = so;
	memcpy(so, seg_off, sizeof(int) * (nseg + 1));
	cb->k = 0;
	if ((st = Reserve(cb, &cb->dc, sizeof(float) * (size_t) k * d, "the centers", err)) != KM_OK ||
		(st = Reserve(cb, &cb->dcnorm, sizeof(float) * (size_t) k, "the centers", err)) != KM_OK ||
		(st = Reserve(cb, &cb->dseg_off, sizeof(int) * (size_t) (nseg + 1), "the centers", err)) != KM_OK)
		return st;
	CUDA_TRY(cudaMemcpyAsync(cb->dc.p, c, sizeof(float) * (size_t) k * d, cudaMemcpyHostToDevice,
							 cb->stream));
	CUDA_TRY(cudaMemcpyAsync(cb->dseg_off.p, seg_off, sizeof(int) * (nseg + 1),
							 cudaMemcpyHostToDevice, cb->stream));
	LAUNCH(row_norms_kernel, Blocks(k, THREADS), THREADS, (const float *) cb->dc.p, (int64_t) k,
		   d, (float *) cb->dcnorm.p);
	/* no wait: a copy from pageable memory has taken c before it returns */
	cb->k = k;
	cb->nseg = nseg;
	return KM_OK;
}
