/*
 * km_cuda_series.cuh -- DTW assignment on the GPU (series_assign): each row's nearest center by
 * DTW^2 within the Sakoe-Chiba band, the lowest index on ties, and that DTW^2, bit for bit what
 * km_dtw_assign gives on the CPU.  DBA, seeding's cutoff passes and soft-DTW stay on the CPU.
 *
 * The arithmetic.  C(i, j) = (x_i - c_j)^2 + min(C(i-1, j), C(i, j-1), C(i-1, j-1)) in float64,
 * with C(-1, -1) = 0 and +inf outside the band (km_dtw.c's header, km_dtw_band's mask): the
 * difference, the square and the sum each rounded once (__dsub_rn, __dmul_rn, __dadd_rn, which
 * nvcc never fuses, as km_dtw.c is compiled with fp-contract off), the min taken in km_dtw.c's
 * order.  A cell depends only on the values of its three neighbours, not on the order cells are
 * visited in, so every schedule that computes a cell after its neighbours gives km_dtw_sq's bits.
 * Two schedules:
 *
 *   dtw_pair_kernel: a thread per (row, center) pair, the matrix row by row over the band as
 *   km_dtw_sq walks it, its two rows in scratch laid out so that the threads of a warp touch
 *   consecutive addresses.  Parallel across pairs, which an assignment has many of (rows x
 *   centers): the kernel for short series and for calls with many pairs.
 *
 *   dtw_wave_kernel: a block of WAVE_T threads per pair, for long series and few pairs.  Thread
 *   t owns a stripe of h = ceil(lx / WAVE_T) rows; the center's samples are cut in blocks of
 *   WAVE_W columns; in step s thread t computes tile (t, s - t), whose upper neighbour (t - 1,
 *   s - t) and left one (t, s - t - 1) were finished in step s - 1: a wavefront of tiles along
 *   the anti-diagonals, one barrier per step (WAVE_T + ceil(lc / WAVE_W) - 1 steps, where one
 *   barrier per anti-diagonal of cells would take lx + lc - 1).  A tile's last row goes to the
 *   next thread through shared memory (two halves, by step parity), its last column stays with
 *   its thread (in scratch), and a tile the band misses is +inf without a cell computed.
 *
 * Then dtw_argmin_kernel, a thread per row, takes the least of the row's k DTW^2 in index
 * order, the first of equals: km_dtw_assign's label, whose pruned order also ends on the lowest
 * index of equal DTW^2.
 *
 * Transfers and memory.  Nothing stays on the device between calls: each copies the rows'
 * samples (float32, m values for m samples), their offsets and the centers (float64) in, and
 * the labels and distances out, and waits for them.  That, the k DTW^2 of every row and the
 * kernel's scratch are one buffer, sized with overflow-checked arithmetic before anything is
 * allocated; the scratch shrinks (fewer resident threads, each taking more pairs) to fit the
 * budget, and a call whose data and one block of scratch do not fit is refused with the sizes.
 * Which kernel runs depends on the call's shape (WAVE_MAX_PAIRS, WAVE_MIN_LEN: guesses, not
 * yet measured on a GPU) or on be->series_kernel, which the tests set.
 *
 * CPU twin: km_dtw_assign (km_dtw.c), through CpuSeriesAssign (km_cpu.c).  Tested by
 * test/engine/test_cuda.c, TestSeriesAssign: both kernels against km_dtw_assign bit for bit
 * (random series of mixed lengths, with and without a band, k = 1 to 40, duplicate centers,
 * calls cut at odd rows, a budget that shrinks the scratch and one that refuses the call), and
 * the planted faults (be->series_fault) caught.
 *
 * Part of km_cuda.cu's unity build, included after km_cuda_quality.cuh.
 */

/* threads of the wave kernel's block: the rows of C in as many stripes */
#define WAVE_T 32
/* columns of one tile of the wave kernel, kept in registers */
#define WAVE_W 32
/* the pair kernel's resident threads at most; each takes pair after pair */
#define PAIR_THREADS_MAX (1 << 18)
/* the wave kernel's resident blocks at most */
#define WAVE_BLOCKS_MAX 8192
/* the wave kernel serves calls of fewer pairs, where rows and centers have this many samples */
#define WAVE_MAX_PAIRS 65536
#define WAVE_MIN_LEN 64

/* km_dtw_band (km_dtw.h) on the device: the columns [*lo, *hi] row i of lx meets of lc. */
static __device__ __forceinline__ void
DtwBandDev(int i, int lx, int lc, int band, int *lo, int *hi)
{
	int			a,
				b;

	if (band < 0 || band >= (lx > lc ? lx : lc))
	{
		*lo = 0;
		*hi = lc - 1;
		return;
	}
	if (lx <= lc)
	{
		a = i - band;
		b = i + (lc - lx) + band;
	}
	else
	{
		a = i - (lx - lc) - band;
		b = i + band;
	}
	*lo = a < 0 ? 0 : a;
	*hi = b > lc - 1 ? lc - 1 : b;
}

/* One cell of C as km_dtw_sq computes it (fused instead with the planted FMA fault). */
static __device__ __forceinline__ double
DtwCell(double xi, double cj, double up, double left, double diag, int fused)
{
	double		diff = __dsub_rn(xi, cj);
	double		m = up;

	if (left < m)
		m = left;
	if (diag < m)
		m = diag;
	return fused ? __fma_rn(diff, diff, m) : __dadd_rn(__dmul_rn(diff, diff), m);
}

/*
 * DTW^2 of every (row, center) pair p = row * k + center of the call, a thread each: pd[p].
 * Row r's samples are x[off[r] - off[0] ...]; thread tid keeps its two rows of C at
 * scratch[q * nthr + tid] and scratch[(lc + 1 + q) * nthr + tid], q = 0..lc.
 */
static __global__ void
dtw_pair_kernel(const float *x, const int64_t *off, int64_t rows, const double *c, int k, int lc,
				int band, int fused, double *scratch, int64_t nthr, double *pd)
{
	int64_t		tid = (int64_t) blockIdx.x * blockDim.x + threadIdx.x;
	int64_t		base = off[0];

	if (tid >= nthr)
		return;
	for (int64_t p = tid; p < rows * k; p += nthr)
	{
		int64_t		r = p / k;
		const float *xr = x + (off[r] - base);
		int			lx = (int) (off[r + 1] - off[r]);
		const double *cj = c + (p % k) * lc;
		double	   *prev = scratch + tid,
				   *cur = scratch + (int64_t) (lc + 1) * nthr + tid,
				   *swap;

		/* row -1: C(-1, -1) = 0, +inf elsewhere; columns right of a band stay +inf */
		for (int q = 0; q <= lc; q++)
		{
			prev[q * nthr] = INFINITY;
			cur[q * nthr] = INFINITY;
		}
		prev[0] = 0.0;
		for (int i = 0; i < lx; i++)
		{
			int			lo,
						hi;
			double		xi = (double) xr[i];
			double		diag,
						left = INFINITY;

			/* column q + 1 holds C(i, q); column lo holds the +inf left of the band */
			DtwBandDev(i, lx, lc, band, &lo, &hi);
			diag = prev[lo * nthr];
			cur[lo * nthr] = INFINITY;
			for (int j = lo; j <= hi; j++)
			{
				double		up = prev[(int64_t) (j + 1) * nthr];
				double		v = DtwCell(xi, cj[j], up, left, diag, fused);

				cur[(int64_t) (j + 1) * nthr] = v;
				left = v;
				diag = up;
			}
			swap = prev;
			prev = cur;
			cur = swap;
		}
		pd[p] = prev[(int64_t) lc * nthr];
	}
}

/*
 * DTW^2 of every (row, center) pair of the call, a block of WAVE_T threads each (see the
 * header): pd[p].  Thread t keeps the last column of its stripe's tile at
 * scratch[(blockIdx.x * hmax + ii) * WAVE_T + t] for its ii-th row.
 */
static __global__ void __launch_bounds__(WAVE_T)
dtw_wave_kernel(const float *x, const int64_t *off, int64_t rows, const double *c, int k, int lc,
				int band, int fused, double *scratch, int hmax, double *pd)
{
	/* each thread's last tile row, by step parity; one double of padding against bank conflicts */
	__shared__ double edge[2][WAVE_T][WAVE_W + 1];
	int			t = threadIdx.x;
	double	   *lastcol = scratch + (int64_t) blockIdx.x * hmax * WAVE_T + t;
	int64_t		base = off[0];

	for (int64_t p = blockIdx.x; p < rows * k; p += gridDim.x)
	{
		int64_t		r = p / k;
		const float *xr = x + (off[r] - base);
		int			lx = (int) (off[r + 1] - off[r]);
		const double *cj = c + (p % k) * lc;
		int			h = (lx + WAVE_T - 1) / WAVE_T;
		int			nt = (lx + h - 1) / h;	/* stripes that hold rows */
		int			nb = (lc + WAVE_W - 1) / WAVE_W;
		int			i0 = t * h,
					i1 = i0 + h < lx ? i0 + h : lx;
		/* C(i0 - 1, c0 - 1), the corner of this thread's next tile */
		double		corner = t == 0 ? 0.0 : INFINITY;

		for (int s = 0; s < nt + nb - 1; s++)
		{
			int			b = s - t;

			if (t < nt && b >= 0 && b < nb)
			{
				int			c0 = b * WAVE_W;
				int			w = lc - c0 < WAVE_W ? lc - c0 : WAVE_W;
				int			lo0,
							hi0,
							lo1,
							hi1;
				/* row[0] = C(i - 1, c0 - 1), row[1 + q] = C(i - 1, c0 + q), then row i's */
				double		row[WAVE_W + 1];
				double		next,
							last = INFINITY;

				row[0] = corner;
				for (int q = 0; q < WAVE_W; q++)
					row[1 + q] = t > 0 && q < w ? edge[(s - 1) & 1][t - 1][q] : INFINITY;
				next = row[WAVE_W];
				DtwBandDev(i0, lx, lc, band, &lo0, &hi0);
				DtwBandDev(i1 - 1, lx, lc, band, &lo1, &hi1);
				if (hi1 < c0 || lo0 > c0 + w - 1)
				{
					/* the band misses the tile (both its ends rise with i) */
					for (int i = i0; i < i1; i++)
						lastcol[(int64_t) (i - i0) * WAVE_T] = INFINITY;
					for (int q = 0; q < WAVE_W; q++)
						row[1 + q] = INFINITY;
				}
				else
					for (int i = i0; i < i1; i++)
					{
						int			lo,
									hi;
						double		xi = (double) xr[i];
						double		diag = row[0];
						double	   *lp = lastcol + (int64_t) (i - i0) * WAVE_T;

						DtwBandDev(i, lx, lc, band, &lo, &hi);
						row[0] = b == 0 ? INFINITY : *lp;
						for (int q = 0; q < WAVE_W; q++)
							if (q < w)
							{
								int			j = c0 + q;
								double		up = row[1 + q];
								double		v = j < lo || j > hi ? INFINITY :
									DtwCell(xi, cj[j], up, row[q], diag, fused);

								row[1 + q] = v;
								diag = up;
								last = v;
							}
						*lp = last;
					}
				for (int q = 0; q < WAVE_W; q++)
					edge[s & 1][t][q] = row[1 + q];
				/* the tile of the last row and column holds C(lx - 1, lc - 1) */
				if (t == nt - 1 && b == nb - 1)
					pd[p] = last;
				corner = next;
			}
			__syncthreads();
		}
	}
}

/* Each row's least DTW^2 of its k (pd, row-major) and its first index: labels, dist. */
static __global__ void
dtw_argmin_kernel(const double *pd, int64_t rows, int k, int32_t *labels, double *dist)
{
	for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < rows;
		 i += (int64_t) gridDim.x * blockDim.x)
	{
		const double *v = pd + i * k;
		double		best = INFINITY;
		int			bestj = -1;

		for (int j = 0; j < k; j++)
			if (v[j] < best)
			{
				best = v[j];
				bestj = j;
			}
		/* not reached: every DTW^2 of finite series is finite */
		labels[i] = bestj < 0 ? 0 : bestj;
		dist[i] = best;
	}
}

/* a * b, a + b and a rounded up to 8, saturating at SIZE_MAX (which then fits nowhere) */
static size_t
SizeMul(size_t a, size_t b)
{
	size_t		r;

	return __builtin_mul_overflow(a, b, &r) ? SIZE_MAX : r;
}

static size_t
SizeAdd(size_t a, size_t b)
{
	size_t		r;

	return __builtin_add_overflow(a, b, &r) ? SIZE_MAX : r;
}

static size_t
SizeAlign8(size_t a)
{
	return a > SIZE_MAX - 7 ? SIZE_MAX : (a + 7) & ~(size_t) 7;
}

/*
 * The nearest center of rows [r0, r1) of s by DTW^2 within cs->band: labels[i] and dist[i] for
 * i in [r0, r1), as km_dtw_assign gives them without a cutoff.  Copies in, two kernels, copies
 * out, one wait; envelopes in cs are not used.
 */
static KmStatus
CudaSeriesAssign(KmBackend *be, const KmSeries *s, int64_t r0, int64_t r1, const KmDtwCenters *cs,
				 int32_t *labels, double *dist, KmError *err)
{
	CudaBackend *cb = (CudaBackend *) be;
	int			k = cs->k,
				lc = cs->lc;
	int			band = be->series_fault == KM_SERIES_FAULT_BAND ? -1 : cs->band;
	int			fused = be->series_fault == KM_SERIES_FAULT_FMA;
	int64_t		rows = r1 - r0,
				maxlen = 1,
				nv,
				npairs;
	int			wave,
				hmax;
	size_t		xb,
				ob,
				cb_bytes,
				pb,
				lb,
				fixed,
				per,
				units,
				avail,
				total;
	char	   *base;
	KmStatus	st;

	if (r0 < 0 || r1 > s->n || r0 > r1 || k < 1 || lc < 1)
		return KM_FAIL(err, KM_ERR_ARGUMENT, "series_assign: rows %lld..%lld of %lld, k=%d, lc=%d",
					   (long long) r0, (long long) r1, (long long) s->n, k, lc);
	if (rows == 0)
		return KM_OK;
	for (int64_t r = r0; r < r1; r++)
	{
		int64_t		len = s->off[r + 1] - s->off[r];

		if (len < 1 || len > INT_MAX / 2)
			return KM_FAIL(err, KM_ERR_ARGUMENT, "series_assign: row %lld has %lld samples",
						   (long long) r, (long long) len);
		if (len > maxlen)
			maxlen = len;
	}
	if (__builtin_mul_overflow(rows, (int64_t) k, &npairs))
		return KM_FAIL(err, KM_ERR_ARGUMENT, "series_assign: %lld rows x %d centers", (long long) rows, k);
	nv = s->off[r1] - s->off[r0];
	wave = be->series_kernel == KM_SERIES_WAVE ||
		(be->series_kernel == KM_SERIES_AUTO && npairs < WAVE_MAX_PAIRS &&
		 maxlen >= WAVE_MIN_LEN && lc >= WAVE_MIN_LEN);
	hmax = (int) ((maxlen + WAVE_T - 1) / WAVE_T);

	/* samples, offsets, centers, the k DTW^2 of each row, labels, distances; then scratch */
	xb = SizeAlign8(SizeMul(sizeof(float), (size_t) nv));
	ob = SizeMul(sizeof(int64_t), (size_t) rows + 1);
	cb_bytes = SizeMul(sizeof(double), SizeMul((size_t) k, (size_t) lc));
	pb = SizeMul(sizeof(double), (size_t) npairs);
	lb = SizeAlign8(SizeMul(sizeof(int32_t), (size_t) rows));
	fixed = SizeAdd(SizeAdd(SizeAdd(xb, ob), SizeAdd(cb_bytes, pb)),
					SizeAdd(lb, SizeMul(sizeof(double), (size_t) rows)));
	/* a unit of scratch: a block of the pair kernel's threads, or one of the wave kernel's */
	if (wave)
	{
		per = SizeMul(sizeof(double), SizeMul((size_t) hmax, WAVE_T));
		units = (size_t) (npairs < WAVE_BLOCKS_MAX ? npairs : WAVE_BLOCKS_MAX);
	}
	else
	{
		int64_t		want = npairs < PAIR_THREADS_MAX ? npairs : PAIR_THREADS_MAX;

		per = SizeMul(sizeof(double) * THREADS, SizeMul(2, (size_t) lc + 1));
		units = (size_t) ((want + THREADS - 1) / THREADS);
	}
	/* the buffer of the last call is given back first where it is too small */
	avail = cb->budget - (cb->used - cb->series.cap);
	if (fixed < avail && SizeAdd(fixed, SizeMul(per, units)) > avail)
		units = (avail - fixed) / per;
	total = SizeAdd(fixed, SizeMul(per, units));
	if (units < 1 || total > avail)
		return KM_FAIL(err, KM_ERR_DEVICE_NOMEM,
					   "a DTW assignment of %lld rows (%lld samples) to %d centers of %d samples needs %.1f MB of GPU memory; %.1f MB of the %.1f MB budget are in use",
					   (long long) rows, (long long) nv, k, lc,
					   (double) SizeAdd(fixed, per) / 1048576.0,
					   (cb->used - cb->series.cap) / 1048576.0, cb->budget / 1048576.0);
	if ((st = Reserve(cb, &cb->series, total, "the DTW assignment", err)) != KM_OK)
		return st;
	base = (char *) cb->series.p;
	{
		const float *dx = (const float *) base;
		const int64_t *doff = (const int64_t *) (base + xb);
		const double *dc = (const double *) (base + xb + ob);
		double	   *dpd = (double *) (base + xb + ob + cb_bytes);
		int32_t    *dlab = (int32_t *) (base + xb + ob + cb_bytes + pb);
		double	   *ddist = (double *) (base + xb + ob + cb_bytes + pb + lb);
		double	   *dscr = (double *) (base + fixed);

		/* from pageable memory: each copy has taken its source when it returns */
		CUDA_TRY(cudaMemcpyAsync((void *) dx, s->values + s->off[r0], sizeof(float) * (size_t) nv,
								 cudaMemcpyHostToDevice, cb->stream));
		CUDA_TRY(cudaMemcpyAsync((void *) doff, s->off + r0, ob, cudaMemcpyHostToDevice,
								 cb->stream));
		CUDA_TRY(cudaMemcpyAsync((void *) dc, cs->c, cb_bytes, cudaMemcpyHostToDevice, cb->stream));
		if (wave)
			LAUNCH(dtw_wave_kernel, (unsigned) units, WAVE_T, dx, doff, rows, dc, k, lc, band,
				   fused, dscr, hmax, dpd);
		else
			LAUNCH(dtw_pair_kernel, (unsigned) units, THREADS, dx, doff, rows, dc, k, lc, band,
				   fused, dscr, (int64_t) units * THREADS, dpd);
		LAUNCH(dtw_argmin_kernel, Blocks(rows, THREADS), THREADS, (const double *) dpd, rows, k,
			   dlab, ddist);
		CUDA_TRY(cudaMemcpyAsync(labels + r0, dlab, sizeof(int32_t) * (size_t) rows,
								 cudaMemcpyDeviceToHost, cb->stream));
		CUDA_TRY(cudaMemcpyAsync(dist + r0, ddist, sizeof(double) * (size_t) rows,
								 cudaMemcpyDeviceToHost, cb->stream));
	}
	return Sync(cb, err);
}
