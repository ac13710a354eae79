/* The analytics row kernel of pairflow/stats/fastrow.py (row_kernel), in C.
 *
 * The same loops in the same order as the Python source, so that the result is
 * bit-identical to it (tests/test_fastrow.py holds it so): IEEE double arithmetic,
 * no fused multiply-add (built with -ffp-contract=off), libm's log and sqrt as
 * Python's math module calls them. Built on first use by pairflow/stats/fastrow.py
 * (with the C compiler the machine has) and loaded with ctypes.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

#define PIVOT_REL 1e-8
#define OK_HALF_LIFE 1
#define OK_TESTS 2

/* Lower Cholesky factor of a[:m, :m] (row stride w) into low; 0 if a pivot fails. */
static int chol(const double *a, long m, long w, double *low) {
    for (long j = 0; j < m; j++) {
        double s = a[j * w + j];
        for (long k = 0; k < j; k++) s -= low[j * w + k] * low[j * w + k];
        if (!(s > 0.0)) return 0;
        if (!(s / a[j * w + j] >= PIVOT_REL)) return 0;
        double d = sqrt(s);
        low[j * w + j] = d;
        for (long i = j + 1; i < m; i++) {
            double t = a[i * w + j];
            for (long k = 0; k < j; k++) t -= low[i * w + k] * low[j * w + k];
            low[i * w + j] = t / d;
        }
    }
    return 1;
}

static void gather(const double *g, const long *cols, long m, long w, double *out) {
    for (long i = 0; i < m; i++) {
        long ci = cols[i];
        for (long j = 0; j < m; j++) out[i * w + j] = g[ci * w + cols[j]];
    }
}

/* AIC lag search on the common sample; the first minimising lag, or -1. */
static long search(const double *g, const long *cols, long m, long base, long p, long nobs,
                   long w, double *work, double *low, double *aic_out) {
    gather(g, cols, m, w, work);
    if (!chol(work, m, w, low)) return -1;
    double nobs2 = (double)nobs / 2.0;
    double cst = (1 + log(M_PI / nobs2)) * nobs2;
    long r = m - 1;
    long best = -1;
    double best_aic = 0.0;
    for (long lag = 0; lag < p + 1; lag++) {
        long k = base + lag;
        double ssr = 0.0;
        for (long j = m - 1; j > k - 1; j--) ssr += low[r * w + j] * low[r * w + j];
        double aic = log(ssr);
        aic *= -nobs2;
        aic -= cst;
        aic *= -2.0;
        aic += 2.0 * (double)k;
        aic_out[lag] = aic;
        if (best < 0 || aic < best_aic) {
            best = lag;
            best_aic = aic;
        }
    }
    return best;
}

/* t-statistic of the level (last column before the target), rows lag..; NaN: unsafe. */
static double refit(const double *g, const double *zrows, const long *cols, long m, long lag,
                    long p, long nobs_fit, long k, long w, double *work, double *low) {
    gather(g, cols, m, w, work);
    for (long t = lag; t < p; t++) {
        for (long i = 0; i < m; i++) {
            double vi = zrows[t * w + cols[i]];
            for (long j = 0; j < m; j++) work[i * w + j] += vi * zrows[t * w + cols[j]];
        }
    }
    if (!chol(work, m, w, low)) return NAN;
    long r = m - 1;
    double sigma = sqrt(low[r * w + r] * low[r * w + r] / (double)(nobs_fit - k));
    if (!(sigma > 0.0)) return NAN;
    return low[r * w + r - 1] / sigma;
}

static long row_tests(const double *x, long n, long p, double *out, double *mem);

/* Spreads of the window, their half-life slope and both unit-root tests.
 * Arguments and result as row_kernel in fastrow.py; -1: out of memory. */
long pf_row_kernel(const double *buf_a, const double *buf_b, long head, long n,
                   double anchor_a, double anchor_b, double s_a, double s_b, double beta,
                   long p, double *out) {
    long status = 0;
    long pp = p < 0 ? 0 : p;
    long w = pp + 4;
    /* x, dx, zrows, g, lg, work, low, aic */
    size_t count = (size_t)n + (size_t)n + (size_t)(pp > 1 ? pp : 1) * w + 3 * (size_t)w * w +
                   (size_t)(pp + 1) * (pp + 1) + (size_t)(pp + 1);
    double *mem = malloc(count * sizeof(double) + 2 * (size_t)(pp + 3) * sizeof(long));
    if (mem == NULL) return -1;
    double *x = mem;
    double ma = s_a / (double)n;
    double mb = s_b / (double)n;
    for (long i = 0; i < n; i++)
        x[i] = ((buf_a[head + i] - anchor_a) - ma) - ((buf_b[head + i] - anchor_b) - mb) * beta;
    long m1 = n - 1;
    if (m1 >= 2) {
        double sl = 0.0, sd = 0.0;
        for (long i = 0; i < m1; i++) {
            sl += x[i];
            sd += x[i + 1] - x[i];
        }
        double ml = sl / (double)m1;
        double md = sd / (double)m1;
        double sxx = 0.0, sxd = 0.0;
        for (long i = 0; i < m1; i++) {
            double lc = x[i] - ml;
            sxx += lc * lc;
            sxd += lc * ((x[i + 1] - x[i]) - md);
        }
        if (sxx > 0.0) {
            out[0] = sxd / sxx;
            status |= OK_HALF_LIFE;
        }
    }
    status |= row_tests(x, n, p, out, mem + n);
    free(mem);
    return status;
}

static long row_tests(const double *x, long n, long p, double *out, double *mem) {
    long rows = n - 1;
    long nobs = rows - p;
    if (p < 0 || nobs - (p + 2) <= 0) return 0;
    double total = 0.0;
    for (long i = 0; i < n; i++) total += x[i];
    if (!isfinite(total)) return 0;
    double mean = total / (double)n;
    long w = p + 4; /* columns: 0 const, 1 centred level, 2 level, 3..p+2 lags 1..p, p+3 target */
    long zr = p > 1 ? p : 1;
    double *dx = mem;
    double *zrows = dx + n;
    double *g = zrows + zr * w;
    double *lg = g + w * w;
    double *work = lg + (p + 1) * (p + 1);
    double *low = work + w * w;
    double *aic = low + w * w;
    long *cols_c = (long *)(aic + (p + 1));
    long *cols_n = cols_c + (p + 3);
    for (long t = 0; t < rows; t++) dx[t] = x[t + 1] - x[t];
    memset(zrows, 0, sizeof(double) * (size_t)(zr * w));
    for (long t = 0; t < p; t++) {
        zrows[t * w + 0] = 1.0;
        zrows[t * w + 1] = x[t] - mean;
        zrows[t * w + 2] = x[t];
        for (long j = 1; j < t + 1; j++) zrows[t * w + 2 + j] = dx[t - j];
        zrows[t * w + p + 3] = dx[t];
    }
    memset(g, 0, sizeof(double) * (size_t)(w * w));
    memset(lg, 0, sizeof(double) * (size_t)((p + 1) * (p + 1)));
    memset(low, 0, sizeof(double) * (size_t)(w * w));
    double sc = 0.0, sx = 0.0, scc = 0.0, sxx2 = 0.0, scx = 0.0;
    for (long t = p; t < rows; t++) {
        double c = x[t] - mean;
        double v = x[t];
        sc += c;
        sx += v;
        scc += c * c;
        sxx2 += v * v;
        scx += c * v;
    }
    g[0] = (double)nobs;
    g[0 * w + 1] = g[1 * w + 0] = sc;
    g[0 * w + 2] = g[2 * w + 0] = sx;
    g[1 * w + 1] = scc;
    g[2 * w + 2] = sxx2;
    g[1 * w + 2] = g[2 * w + 1] = scx;
    long lw = p + 1;
    /* lg[0][k] = sum dx[t] dx[t-k]: four lags a pass (independent sums, each in the
     * Python's order), then the rest one by one. */
    long k0 = 0;
    for (; k0 + 3 < p + 1; k0 += 4) {
        double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
        for (long t = p; t < rows; t++) {
            double d = dx[t];
            a0 += d * dx[t - k0];
            a1 += d * dx[t - k0 - 1];
            a2 += d * dx[t - k0 - 2];
            a3 += d * dx[t - k0 - 3];
        }
        lg[k0] = lg[k0 * lw] = a0;
        lg[k0 + 1] = lg[(k0 + 1) * lw] = a1;
        lg[k0 + 2] = lg[(k0 + 2) * lw] = a2;
        lg[k0 + 3] = lg[(k0 + 3) * lw] = a3;
    }
    for (; k0 < p + 1; k0++) {
        double a0 = 0.0;
        for (long t = p; t < rows; t++) a0 += dx[t] * dx[t - k0];
        lg[k0] = lg[k0 * lw] = a0;
    }
    double s_x = 0.0;
    for (long t = p; t < rows; t++) s_x += x[t] * dx[t];
    /* Level x lag sums from the lag-0 one, O(1) a lag (see row_kernel in fastrow.py). */
    for (long k = 0; k < p + 1; k++) {
        long ck = k == 0 ? p + 3 : 2 + k;
        double s1 = x[rows - k] - x[p - k];
        g[0 * w + ck] = g[ck * w + 0] = s1;
        g[1 * w + ck] = g[ck * w + 1] = s_x - mean * s1;
        g[2 * w + ck] = g[ck * w + 2] = s_x;
        if (k < p)
            s_x = (s_x + x[p - 1] * dx[p - 1 - k] - x[rows - 1] * dx[rows - 1 - k]) +
                  (lg[k] + dx[p - 1] * dx[p - 1 - k] - dx[rows - 1] * dx[rows - 1 - k]);
    }
    for (long j = 0; j < p; j++) {
        for (long k = j; k < p; k++) {
            double v = lg[j * lw + k] + dx[p - 1 - j] * dx[p - 1 - k] -
                       dx[rows - 1 - j] * dx[rows - 1 - k];
            lg[(j + 1) * lw + k + 1] = lg[(k + 1) * lw + j + 1] = v;
        }
    }
    for (long j = 0; j < p + 1; j++) {
        long cj = j == 0 ? p + 3 : 2 + j;
        for (long k = 0; k < p + 1; k++) {
            long ck = k == 0 ? p + 3 : 2 + k;
            g[cj * w + ck] = lg[j * lw + k];
        }
    }
    /* "c": [const, centred level, lags 1..p, target]; "n": [level, lags 1..p, target]. */
    cols_c[0] = 0;
    cols_c[1] = 1;
    cols_n[0] = 2;
    for (long j = 1; j < p + 1; j++) {
        cols_c[1 + j] = 2 + j;
        cols_n[j] = 2 + j;
    }
    cols_c[p + 2] = p + 3;
    cols_n[p + 1] = p + 3;
    long lag_c = search(g, cols_c, p + 3, 2, p, nobs, w, work, low, aic);
    if (lag_c < 0) return 0;
    double ic_c = aic[lag_c];
    long lag_n = search(g, cols_n, p + 2, 1, p, nobs, w, work, low, aic);
    if (lag_n < 0) return 0;
    double ic_n = aic[lag_n];
    long nobs_c = rows - lag_c;
    long nobs_n = rows - lag_n;
    long k_c = 2 + lag_c;
    long k_n = 1 + lag_n;
    if (nobs_c - k_c <= 0 || nobs_n - k_n <= 0) return 0;
    /* Refits, level column last before the target (the search's column arrays reused). */
    long *fc = cols_c;
    fc[0] = 0;
    for (long j = 1; j < lag_c + 1; j++) fc[j] = 2 + j;
    fc[lag_c + 1] = 1;
    fc[lag_c + 2] = p + 3;
    double stat_c = refit(g, zrows, fc, lag_c + 3, lag_c, p, nobs_c, k_c, w, work, low);
    if (isnan(stat_c)) return 0;
    long *fn = cols_n;
    for (long j = 0; j < lag_n; j++) fn[j] = 3 + j;
    fn[lag_n] = 2;
    fn[lag_n + 1] = p + 3;
    double stat_n = refit(g, zrows, fn, lag_n + 2, lag_n, p, nobs_n, k_n, w, work, low);
    if (isnan(stat_n)) return 0;
    out[1] = stat_c;
    out[2] = (double)lag_c;
    out[3] = (double)nobs_c;
    out[4] = ic_c;
    out[5] = stat_n;
    out[6] = (double)lag_n;
    out[7] = (double)nobs_n;
    out[8] = ic_n;
    return OK_TESTS;
}

/* ---- The whole statistics row: pf_row_stats ------------------------------------------
 * operators/pair_row.py window_stats (its compiled branch) and the MacKinnon p-values of
 * pairflow/stats/cointegration.py (_pvalue, ndtr), in one call, with the same operations
 * in the same order as that Python (so bit-identical to it; tests/test_fastrow.py).
 * Python's max(v, 0.0) is "0.0 > v ? 0.0 : v" (NaN stays NaN), as written below.
 */

#define ROW_DECLINED 4
#define ROW_KERNEL 8 /* pf_row_kernel ran (half-life and, if asked, the tests) */

/* params: see pair_row.py _row_params: SSR_GUARD_REL, _TINY_SPREAD_REL, 1 - 100 SQRTEPS,
 * sqrt(0.5), then the MacKinnon tables of ("c", N=1) and ("c", N=2), each as
 * hi, lo, star, n_small, small (Horner order), n_large, large. */
#define P_SSR_GUARD 0
#define P_TINY 1
#define P_RSQ_MAX 2
#define P_SQRT1_2 3
#define P_TABLES 4

static double ndtr(double a, double sqrt1_2) {
    double x = a * sqrt1_2;
    double z = fabs(x);
    if (z < sqrt1_2) return 0.5 + 0.5 * erf(x);
    double y = 0.5 * erfc(z);
    return x > 0 ? 1.0 - y : y;
}

/* MacKinnon p-value of stat from one table (pointer advanced past it in *next). */
static double mackinnon(double stat, const double *t, double sqrt1_2, const double **next) {
    long ns = (long)t[3];
    const double *small = t + 4;
    long nl = (long)t[4 + ns];
    const double *large = t + 5 + ns;
    if (next != NULL) *next = large + nl;
    if (stat > t[0]) return 1.0;
    if (stat < t[1]) return 0.0;
    const double *c = stat <= t[2] ? small : large;
    long nc = stat <= t[2] ? ns : nl;
    double acc = 0.0;
    for (long i = 0; i < nc; i++) acc = acc * stat + c[i];
    return ndtr(acc, sqrt1_2);
}

/* (c_aa, c_bb, c_ab) of RollingPair.centred for n >= 1. */
static void centred(long n, double s_a, double s_b, double s_aa, double s_bb, double s_ab,
                    double *c) {
    double dn = (double)n;
    double c_aa = s_aa - s_a * s_a / dn;
    double c_bb = s_bb - s_b * s_b / dn;
    c_aa = 0.0 > c_aa ? 0.0 : c_aa;
    c_bb = 0.0 > c_bb ? 0.0 : c_bb;
    double c_ab = s_ab - s_a * s_b / dn;
    if (c_aa == 0.0 || c_bb == 0.0) c_ab = 0.0;
    c[0] = c_aa;
    c[1] = c_bb;
    c[2] = c_ab;
}

/* Statistics of one window: out[0..8] = alpha, beta, spread, zscore, corr, adf_pvalue,
 * eg_pvalue, half_life, spread_std (NaN where Python has None or a non-finite value);
 * out[9..17] = pf_row_kernel's output, out[18] = R^2 (NaN: undefined).
 * Returns pf_row_kernel's status bits and ROW_KERNEL (0 where it did not run; with
 * ROW_KERNEL and without OK_TESTS the Python caller runs the numpy tests if it wants
 * p-values), ROW_DECLINED where the Python path must make the whole row (the R^2 ~ 1
 * guard of RollingPair.ols), or -1 (out of memory).
 * p: the ADF maximum lag if it is the same for "c" and "n" (else -1). */
long pf_row_stats(const double *buf_a, const double *buf_b, long head, long n,
                  double anchor_a, double anchor_b, double s_a, double s_b, double s_aa,
                  double s_bb, double s_ab, long rn, double r_a, double r_b, double r_aa,
                  double r_bb, double r_ab, long p, long with_p, const double *params,
                  double *out) {
    double c[3];
    for (long i = 0; i < 9; i++) out[i] = NAN;
    out[18] = NAN;
    if (rn >= 2) { /* RollingPair.corr of the returns */
        centred(rn, r_a, r_b, r_aa, r_bb, r_ab, c);
        if (!(c[0] <= 0.0 || c[1] <= 0.0)) {
            double r = c[2] / sqrt(c[0] * c[1]);
            r = r > -1.0 ? r : -1.0;
            out[4] = r < 1.0 ? r : 1.0;
        }
    }
    if (n < 2) return 0; /* RollingPair.ols: no fit */
    centred(n, s_a, s_b, s_aa, s_bb, s_ab, c);
    double c_aa = c[0], c_bb = c[1], c_ab = c[2];
    if (c_bb <= 0.0) return 0;
    double dn = (double)n;
    double beta = c_ab / c_bb;
    double mean_a = anchor_a + s_a / dn;
    double mean_b = anchor_b + s_b / dn;
    double alpha = mean_a - beta * mean_b;
    double ssr = c_aa - beta * c_ab;
    if (ssr < params[P_SSR_GUARD] * c_aa) return ROW_DECLINED; /* ssr recomputed in numpy */
    ssr = 0.0 > ssr ? 0.0 : ssr;
    int has_rsq = !(c_aa <= 0.0);
    double rsq = has_rsq ? 1.0 - ssr / c_aa : 0.0;
    out[18] = has_rsq ? rsq : NAN;
    double dy = (buf_a[head + n - 1] - anchor_a) - s_a / dn; /* RollingPair.last_deviation */
    double dx = (buf_b[head + n - 1] - anchor_b) - s_b / dn;
    out[0] = alpha;
    out[1] = beta;
    double spread = dy - beta * dx;
    out[2] = spread;
    out[8] = sqrt(ssr / (double)(n - 1));
    double level = fabs(mean_a);
    level = level > 1.0 ? level : 1.0;
    double tiny = pow(params[P_TINY] * level, 2.0) * dn;
    if (ssr <= tiny) return 0; /* constant spreads: z, tests, half-life undefined */
    out[3] = spread / sqrt(ssr / (double)(n - 1));
    int fast = with_p && has_rsq && rsq < params[P_RSQ_MAX] && p >= 0;
    long status = pf_row_kernel(buf_a, buf_b, head, n, anchor_a, anchor_b, s_a, s_b, beta,
                                fast ? p : -1, out + 9);
    if (status < 0) return status;
    status |= ROW_KERNEL;
    if (status & OK_HALF_LIFE) {
        double lam = out[9];
        if (lam < 0.0 && 1.0 + lam > 0.0) out[7] = -log(2.0) / log1p(lam);
    }
    if (!with_p || !(status & OK_TESTS)) return status; /* Python: no or numpy tests */
    const double *c2;
    double sqrt1_2 = params[P_SQRT1_2];
    out[5] = mackinnon(out[10], params + P_TABLES, sqrt1_2, &c2);
    out[6] = mackinnon(out[14], c2, sqrt1_2, NULL);
    return status;
}
