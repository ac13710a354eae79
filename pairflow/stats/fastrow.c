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
    for (long k = 0; k < p + 1; k++) {
        double s1 = 0.0, s0 = 0.0, s_c = 0.0, s_x = 0.0;
        for (long t = p; t < rows; t++) {
            double d = dx[t - k];
            s1 += d;
            s0 += dx[t] * d;
            s_c += (x[t] - mean) * d;
            s_x += x[t] * d;
        }
        lg[0 * lw + k] = lg[k * lw + 0] = s0;
        long ck = k == 0 ? p + 3 : 2 + k;
        g[0 * w + ck] = g[ck * w + 0] = s1;
        g[1 * w + ck] = g[ck * w + 1] = s_c;
        g[2 * w + ck] = g[ck * w + 2] = s_x;
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
