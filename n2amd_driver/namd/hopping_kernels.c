/* Per-trajectory loops of surface hopping (n2amd_driver/namd/hopping.py states the rules; this file only
 * runs them). Compiled by hopping.py on first use (cc -O2 -shared) and called through ctypes.
 *
 * Arrays are C-contiguous; complex numbers are (re, im) pairs of doubles; indices are int64.
 * Shapes: R rows of W trajectories, G groups (initial times), n states, a chunk of `block` MD steps whose
 * series steps are where[g, b] (indices into the chunk's `nu` distinct steps). Records (rows, nrec, n): row
 * rec_row[r] for the trajectories of row r, index s / every after s = steps_done + b + 1 steps, when every
 * divides s.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int64_t i64;

/* x <- exp(-i tau H) x for Hermitian H (n x n, (re, im) pairs): Taylor series of H shifted by its mean
 * diagonal, tau split into pieces with tau * ||H - shift||_1 <= 1/2, summed until a term is below 1e-17 of the
 * sum. `work` holds 4n doubles. */
static void expm_apply(i64 n, const double *H, double *x, double tau, double *work)
{
    double shift = 0.0, norm = 0.0;
    for (i64 i = 0; i < n; i++) shift += H[2 * (i * n + i)];
    shift /= (double)n;
    for (i64 i = 0; i < n; i++) {
        double row = 0.0;
        for (i64 j = 0; j < n; j++) {
            double re = H[2 * (i * n + j)] - (i == j ? shift : 0.0), im = H[2 * (i * n + j) + 1];
            row += sqrt(re * re + im * im);
        }
        if (row > norm) norm = row;
    }
    i64 pieces = (i64)ceil(2.0 * norm * fabs(tau));
    if (pieces < 1) pieces = 1;
    double dtau = tau / (double)pieces;
    double *term = work, *next = work + 2 * n;
    for (i64 p = 0; p < pieces; p++) {
        memcpy(term, x, sizeof(double) * 2 * n);
        for (int k = 1; k < 60; k++) {
            double f = dtau / k, small = 0.0, big = 0.0;
            for (i64 i = 0; i < n; i++) {
                double ar = 0.0, ai = 0.0;
                for (i64 j = 0; j < n; j++) {
                    double hr = H[2 * (i * n + j)] - (i == j ? shift : 0.0), hi = H[2 * (i * n + j) + 1];
                    ar += hr * term[2 * j] - hi * term[2 * j + 1];
                    ai += hr * term[2 * j + 1] + hi * term[2 * j];
                }
                /* times -i f: (ar + i ai)(-i f) = f ai - i f ar */
                next[2 * i] = f * ai;
                next[2 * i + 1] = -f * ar;
            }
            for (i64 i = 0; i < n; i++) {
                term[2 * i] = next[2 * i];
                term[2 * i + 1] = next[2 * i + 1];
                x[2 * i] += next[2 * i];
                x[2 * i + 1] += next[2 * i + 1];
                double t = fabs(next[2 * i]) + fabs(next[2 * i + 1]), s = fabs(x[2 * i]) + fabs(x[2 * i + 1]);
                if (t > small) small = t;
                if (s > big) big = s;
            }
            if (small <= 1e-17 * big) break;
        }
    }
    double cr = cos(tau * shift), ci = -sin(tau * shift); /* exp(-i tau shift) */
    for (i64 i = 0; i < n; i++) {
        double re = x[2 * i], im = x[2 * i + 1];
        x[2 * i] = re * cr - im * ci;
        x[2 * i + 1] = re * ci + im * cr;
    }
}

/* FSSH: propagate each group's c (G, n) through the sub-step Hamiltonians H (nu, nelm, n, n) eV, tau = h/hbar;
 * write the hop probabilities g (G, block, n, n) accumulated over the sub-steps, clipped at 0 and times the
 * Boltzmann factors F (nu, n, n), their row sums out (G, block, n), and |c|^2 after each step pops (G, block, n). */
void fssh_probabilities(i64 G, i64 block, i64 nelm, i64 n, const double *H, const double *F, const i64 *where,
                        double *c, double tau, double *g, double *out, double *pops)
{
    double *work = malloc(sizeof(double) * 4 * n);
    for (i64 gr = 0; gr < G; gr++) {
        double *x = c + 2 * gr * n;
        for (i64 b = 0; b < block; b++) {
            i64 u = where[gr * block + b];
            double *gb = g + (gr * block + b) * n * n;
            memset(gb, 0, sizeof(double) * n * n);
            for (i64 j = 0; j < nelm; j++) {
                const double *Hj = H + 2 * (u * nelm + j) * n * n;
                expm_apply(n, Hj, x, tau, work);
                for (i64 k = 0; k < n; k++) {
                    double pk = x[2 * k] * x[2 * k] + x[2 * k + 1] * x[2 * k + 1];
                    if (pk < 1e-300) pk = 1e-300;
                    for (i64 m = 0; m < n; m++) {
                        if (m == k) continue;
                        /* 2 Re(c_k* c_m d_km) h / |c_k|^2, with h d_km = -tau Im H_km (H = E - i hbar d) */
                        double cc = x[2 * k] * x[2 * m] + x[2 * k + 1] * x[2 * m + 1];
                        gb[k * n + m] -= 2.0 * cc * tau * Hj[2 * (k * n + m) + 1] / pk;
                    }
                }
            }
            double *ob = out + (gr * block + b) * n, *pb = pops + (gr * block + b) * n;
            const double *Fu = F + u * n * n;
            for (i64 k = 0; k < n; k++) {
                pb[k] = x[2 * k] * x[2 * k] + x[2 * k + 1] * x[2 * k + 1];
                ob[k] = 0.0;
                for (i64 m = 0; m < n; m++) {
                    double v = gb[k * n + m];
                    gb[k * n + m] = v > 0.0 ? v * Fu[k * n + m] : 0.0;
                    ob[k] += gb[k * n + m];
                }
            }
        }
    }
    free(work);
}

/* FSSH: each trajectory's hops over the chunk, one uniform number rand (R, block, W) per step against the
 * cumulative probabilities out of its active state (searched only when below their sum out). */
void fssh_hops(i64 R, i64 W, i64 block, i64 n, const double *g, const double *out, const i64 *group,
               const i64 *rec_row, i64 *active, const i64 *nvalid, const double *rand, int absorbing, i64 bottom,
               i64 steps_done, i64 every, i64 nrec, double *rec_sh)
{
    for (i64 r = 0; r < R; r++) {
        i64 gr = group[r];
        for (i64 w = 0; w < nvalid[r]; w++) {
            i64 a = active[r * W + w];
            for (i64 b = 0; b < block; b++) {
                double x = rand[(r * block + b) * W + w];
                const i64 gb = gr * block + b;
                if (x < out[gb * n + a] && !(absorbing && a == bottom)) {
                    double cum = 0.0;
                    for (i64 m = 0; m < n; m++) {
                        cum += g[(gb * n + a) * n + m];
                        if (x < cum) { a = m; break; }
                    }
                }
                i64 s = steps_done + b + 1;
                if (s % every == 0) rec_sh[(rec_row[r] * nrec + s / every) * n + a] += 1.0;
            }
            active[r * W + w] = a;
        }
    }
}

/* DISH over the chunk: c <- U c, clocks, the decoherence event of the state with the largest clock/tau_i
 * (collapse with probability |c_i|^2 F, else projection). Ur, Ui (nu, n, n): real and imaginary parts of the
 * step propagators; F (nu, n, n); c (R, W, n); clocks (R, W, n) fs; inv_tau (n, n) 1/fs; dt fs.
 * A row's trajectories are held state-major (x[i * W + t]) so the products run over trajectories in the
 * innermost loop, which the compiler vectorises (an AVX2 clone is picked at run time where the processor
 * has it); the events are then decided trajectory by trajectory. */
__attribute__((target_clones("avx2", "default")))
void dish_steps(i64 R, i64 W, i64 block, i64 n, const double *Ur, const double *Ui, const double *F,
                const i64 *where, const i64 *group, const i64 *rec_row, double *c, i64 *active, double *clocks,
                const i64 *nvalid,
                const double *rand, const double *inv_tau, double dt, int absorbing, i64 bottom, i64 steps_done,
                i64 every, i64 nrec, double *rec_sh, double *rec_c2)
{
    const i64 nW = n * W;
    double *xr = malloc(sizeof(double) * nW), *xi = malloc(sizeof(double) * nW);
    double *yr = malloc(sizeof(double) * nW), *yi = malloc(sizeof(double) * nW);
    double *clock = malloc(sizeof(double) * nW), *pop = malloc(sizeof(double) * nW);
    double *rate = malloc(sizeof(double) * nW);
    double *best = malloc(sizeof(double) * W);
    i64 *istar = malloc(sizeof(i64) * W);
    for (i64 r = 0; r < R; r++) {
        const i64 gr = group[r], T = nvalid[r];
        i64 *act = active + r * W;
        for (i64 t = 0; t < T; t++)
            for (i64 i = 0; i < n; i++) {
                xr[i * W + t] = c[2 * ((r * W + t) * n + i)];
                xi[i * W + t] = c[2 * ((r * W + t) * n + i) + 1];
                clock[i * W + t] = clocks[(r * W + t) * n + i];
            }
        for (i64 b = 0; b < block; b++) {
            const i64 u = where[gr * block + b];
            const double *Ru = Ur + u * n * n, *Iu = Ui + u * n * n;
            for (i64 i = 0; i < n; i++) {
                double *yri = yr + i * W, *yii = yi + i * W;
                for (i64 t = 0; t < T; t++) { yri[t] = 0.0; yii[t] = 0.0; }
                for (i64 j = 0; j < n; j++) {
                    const double ur = Ru[i * n + j], ui = Iu[i * n + j], *xrj = xr + j * W, *xij = xi + j * W;
                    for (i64 t = 0; t < T; t++) {
                        yri[t] += ur * xrj[t] - ui * xij[t];
                        yii[t] += ur * xij[t] + ui * xrj[t];
                    }
                }
            }
            for (i64 k = 0; k < nW; k++) {
                xr[k] = yr[k];
                xi[k] = yi[k];
                pop[k] = yr[k] * yr[k] + yi[k] * yi[k];
            }
            for (i64 t = 0; t < T; t++) { best[t] = -1.0; istar[t] = 0; }
            for (i64 i = 0; i < n; i++) {
                double *ri = rate + i * W, *ci = clock + i * W;
                for (i64 t = 0; t < T; t++) ri[t] = 0.0;
                for (i64 j = 0; j < n; j++) {
                    const double q = inv_tau[i * n + j], *pj = pop + j * W;
                    for (i64 t = 0; t < T; t++) ri[t] += pj[t] * q;
                }
                for (i64 t = 0; t < T; t++) {
                    ci[t] += dt;
                    double ratio = ci[t] * ri[t];
                    if (ratio > best[t]) { best[t] = ratio; istar[t] = i; }
                }
            }
            const double *rb = rand + (r * block + b) * W;
            const i64 s = steps_done + b + 1, k = s % every == 0 ? s / every : -1;
            for (i64 t = 0; t < T; t++) {
                i64 a = act[t];
                if (best[t] >= 1.0) {
                    const i64 is = istar[t];
                    if (rb[t] < pop[is * W + t] * F[(u * n + a) * n + is]) { /* collapse onto i* */
                        double cr = xr[is * W + t], cim = xi[is * W + t], mod = sqrt(cr * cr + cim * cim);
                        for (i64 i = 0; i < n; i++) {
                            xr[i * W + t] = 0.0;
                            xi[i * W + t] = 0.0;
                            clock[i * W + t] = 0.0;
                        }
                        xr[is * W + t] = mod > 0.0 ? cr / mod : 1.0;
                        xi[is * W + t] = mod > 0.0 ? cim / mod : 0.0;
                        if (!(absorbing && a == bottom)) act[t] = a = is;
                    } else { /* project i* out */
                        double norm = 0.0;
                        for (i64 i = 0; i < n; i++)
                            if (i != is) norm += pop[i * W + t];
                        if (norm > 1e-300) {
                            double scale = 1.0 / sqrt(norm);
                            for (i64 i = 0; i < n; i++) { xr[i * W + t] *= scale; xi[i * W + t] *= scale; }
                            xr[is * W + t] = 0.0;
                            xi[is * W + t] = 0.0;
                        }
                        clock[is * W + t] = 0.0;
                    }
                }
                if (k >= 0) {
                    const i64 q = rec_row[r] * nrec + k;
                    rec_sh[q * n + a] += 1.0;
                    for (i64 i = 0; i < n; i++)
                        rec_c2[q * n + i] += xr[i * W + t] * xr[i * W + t] + xi[i * W + t] * xi[i * W + t];
                }
            }
        }
        for (i64 t = 0; t < T; t++)
            for (i64 i = 0; i < n; i++) {
                c[2 * ((r * W + t) * n + i)] = xr[i * W + t];
                c[2 * ((r * W + t) * n + i) + 1] = xi[i * W + t];
                clocks[(r * W + t) * n + i] = clock[i * W + t];
            }
    }
    free(xr); free(xi); free(yr); free(yi); free(clock); free(pop); free(rate); free(best); free(istar);
}
