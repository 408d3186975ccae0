/*
 * Hot path of micmatch's spectral statistics (spectral.LogPowerAccumulator):
 * - window_frames: int16 or float32 samples -> windowed float32 frames for the FFT;
 * - add_chunk: complex spectrum of a chunk -> each frame's gates (DC rule, absolute gate, relative gate's level
 *   ring) -> power -> floor -> log power in dB -> per-bin sums of the dB values, of their squares and of the
 *   linear power, in one pass, into the row of the frame's level bin;
 * - accumulate and frame_power: the two halves of add_chunk on their own (tests check them against numpy).
 *
 * Why C: numpy needs five passes over each chunk and its float32 log is not vectorised on CPUs without AVX-512,
 * so the log alone cost more than the FFT (benchmarks/bench_profile.py). Here one pass does everything with a
 * polynomial log that the compiler vectorises (with -fno-trapping-math: nothing here relies on floating-point
 * exceptions), compiled for AVX-512, AVX2 and the baseline, the best one chosen at import. The module is
 * optional: without it spectral.py uses numpy.
 *
 * Accuracy of log_f: the mantissa is reduced to [sqrt(1/2), sqrt(2)) and ln(m) is a fitted polynomial, within
 * 5e-8 (2e-7 dB) in float32. The floor is added to the power (it is a positive normal number), so no zero,
 * denormal or NaN reaches the log. Only the buffer protocol is used (no numpy headers).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

/* CPU dispatch: on x86-64 each kernel is compiled three times (AVX-512, AVX2 with FMA, baseline SSE2) and the
   module picks one when it loads, from the features the CPU reports. Not target_clones("arch=haswell"): GCC
   dispatches those clones on the CPU model, not its features, so every later CPU ran the baseline code (2.5x
   slower here). The bodies are always-inline functions, compiled into each variant with its instructions. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DISPATCH 1
#define TARGET_AVX512 __attribute__((target("avx512f,avx2,fma,prefer-vector-width=512")))
#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#endif

static ALWAYS_INLINE float log_f(float x)
{
    union {
        float f;
        uint32_t u;
    } v = {x};
    float e = (float)((int32_t)(v.u >> 23) - 127); /* x is positive and normal: the sign bit is 0 */
    v.u = (v.u & 0x007fffffu) | 0x3f800000u;        /* mantissa in [1, 2) */
    float hi = (float)(v.f > 1.41421356f);          /* branch-free, so the loop vectorises */
    float t = v.f * (1.0f - 0.5f * hi) - 1.0f;      /* in [sqrt(1/2) - 1, sqrt(2) - 1) */
    e += hi;
    /* ln(1 + t) = t * q(t), q of degree 8 fitted by least squares on 4000 Chebyshev nodes of the interval;
       largest error 5e-8 (2e-7 dB) in float32. No division, so it vectorises into multiply-adds. */
    float q = 0.08743945f;
    q = q * t - 0.14377331f;
    q = q * t + 0.14949095f;
    q = q * t - 0.16560696f;
    q = q * t + 0.19956977f;
    q = q * t - 0.25002153f;
    q = q * t + 0.33334183f;
    q = q * t - 0.49999987f;
    q = q * t + 0.99999997f;
    return t * q + e * 0.693147181f;
}

static ALWAYS_INLINE void accumulate_body(const float *restrict spec, Py_ssize_t n_frames, Py_ssize_t n_bins,
                              const int32_t *restrict slots, double *restrict sums, double *restrict squares,
                              double *restrict powers, float floor_power)
{
    const float to_db = 4.34294482f; /* 10 / ln(10) */
    for (Py_ssize_t f = 0; f < n_frames; f++) {
        int32_t g = slots ? slots[f] : 0;
        if (g < 0)
            continue;
        const float *restrict row = spec + 2 * f * n_bins;
        double *restrict s = sums + (Py_ssize_t)g * n_bins;
        double *restrict q = squares + (Py_ssize_t)g * n_bins;
        double *restrict w = powers + (Py_ssize_t)g * n_bins;
        for (Py_ssize_t j = 0; j < n_bins; j++) {
            float re = row[2 * j], im = row[2 * j + 1];
            float p = re * re + im * im;
            float l = to_db * log_f(p + floor_power); /* additive floor: no compare, and below 1e-6 dB once p is
                                                         60 dB above it */
            s[j] += (double)l; /* float64 totals: results do not depend on how frames were chunked */
            q[j] += (double)(l * l);
            w[j] += (double)p; /* the power sum is unfloored: the long-term average spectrum's numerator */
        }
    }
}

static ALWAYS_INLINE void frame_power_body(const float *restrict spec, Py_ssize_t n_frames, Py_ssize_t n_bins,
                               double *restrict two_sided, double *restrict low)
{
    for (Py_ssize_t f = 0; f < n_frames; f++) {
        const float *restrict row = spec + 2 * f * n_bins;
        float lanes[16] = {0}; /* 8 partial sums of re^2 + im^2 pairs: lets the compiler vectorise the sum */
        Py_ssize_t n = 2 * n_bins, j = 0;
        for (; j + 16 <= n; j += 16)
            for (int k = 0; k < 16; k++)
                lanes[k] += row[j + k] * row[j + k];
        double total = 0.0;
        for (int k = 0; k < 16; k++)
            total += lanes[k];
        for (; j < n; j++)
            total += (double)row[j] * row[j];
        double first = (double)row[0] * row[0] + (double)row[1] * row[1];
        double last = (double)row[n - 2] * row[n - 2] + (double)row[n - 1] * row[n - 1];
        double second = n_bins > 1 ? (double)row[2] * row[2] + (double)row[3] * row[3] : 0.0;
        two_sided[f] = 2.0 * total - first - last;
        low[f] = first + 2.0 * second;
    }
}

/* Windowed frames for the FFT: out[f, j] = x[f * hop + j] * window[j], from int16 or float32 samples (the
   sample format's scale is folded into the window). */
static ALWAYS_INLINE void window_i16_body(const int16_t *restrict x, Py_ssize_t n_frames, Py_ssize_t n_fft,
                                          Py_ssize_t hop, const float *restrict window, float *restrict out)
{
    for (Py_ssize_t f = 0; f < n_frames; f++) {
        const int16_t *restrict src = x + f * hop;
        float *restrict dst = out + f * n_fft;
        for (Py_ssize_t j = 0; j < n_fft; j++)
            dst[j] = (float)src[j] * window[j];
    }
}

static ALWAYS_INLINE void window_f32_body(const float *restrict x, Py_ssize_t n_frames, Py_ssize_t n_fft,
                                          Py_ssize_t hop, const float *restrict window, float *restrict out)
{
    for (Py_ssize_t f = 0; f < n_frames; f++) {
        const float *restrict src = x + f * hop;
        float *restrict dst = out + f * n_fft;
        for (Py_ssize_t j = 0; j < n_fft; j++)
            dst[j] = src[j] * window[j];
    }
}

/* What decides whether a frame counts, and where (spectral.LogPowerAccumulator holds the same values). */
typedef struct {
    double level_k;   /* frame level (power re full scale) = two-sided power sum * level_k */
    double gate_sum;  /* absolute gate on the two-sided power sum; negative: no gate */
    double dc_share;  /* a frame with less than this share of its power above bin 1 is a constant offset */
    double level_step_db;
    long long n_rows; /* rows of the level ring (1 without the relative gate) */
    int relative;     /* relative gate on: rows are level bins modulo n_rows */
} gates_t;

/* Level bins (of level_step_db) of the histogram of DC-dominated frames' other power: bins DC_LEVEL_LOW ..
 * DC_LEVEL_LOW + DC_LEVELS - 1 (the ends collect what lies beyond). */
#define DC_LEVEL_LOW (-800)
#define DC_LEVELS 1000
#define STATE_LEN (4 + DC_LEVELS)

/* state: [has_top, top level bin, frames dominated by DC, the highest level bin of the power outside the lowest
 * bins (0 Hz and bin 1) of the frames above the gates' first steps (relative gate only), histogram of the level bins
 * of DC-dominated frames' power outside the lowest bins (only those above the absolute gate)]; counts: frames per
 * row. */
static ALWAYS_INLINE void chunk_body(const float *restrict spec, Py_ssize_t n_frames, Py_ssize_t n_bins,
                                     const gates_t *gates, int64_t *restrict state, int64_t *restrict counts,
                                     double *restrict sums, double *restrict squares, double *restrict powers,
                                     float floor_power)
{
    for (Py_ssize_t f = 0; f < n_frames; f++) {
        const float *row = spec + 2 * f * n_bins;
        double two_sided, low;
        frame_power_body(row, 1, n_bins, &two_sided, &low);
        if (two_sided - low < gates->dc_share * two_sided && two_sided > 0) {
            state[2] += 1;
            /* The power beside the offset, summed again in float64: a small difference of the float32 sums. */
            double rest = 0.0;
            for (Py_ssize_t k = 2; k < n_bins; k++)
                rest += (k == n_bins - 1 ? 1.0 : 2.0) *
                        ((double)row[2 * k] * row[2 * k] + (double)row[2 * k + 1] * row[2 * k + 1]);
            if (gates->gate_sum < 0 || rest >= gates->gate_sum) {
                int64_t bin = (int64_t)floor(10.0 * log10(fmax(rest * gates->level_k, 1e-30)) / gates->level_step_db)
                              - DC_LEVEL_LOW;
                state[4 + (bin < 0 ? 0 : (bin >= DC_LEVELS ? DC_LEVELS - 1 : bin))] += 1;
            }
            continue;
        }
        if (gates->gate_sum >= 0 && !(two_sided >= gates->gate_sum))
            continue;
        int64_t slot = 0;
        if (gates->relative) {
            int64_t rest_level = (int64_t)floor(10.0 * log10(fmax((two_sided - low) * gates->level_k, 1e-30)) /
                                                gates->level_step_db);
            if (rest_level > state[3])
                state[3] = rest_level;
            double level_db = 10.0 * log10(fmax(two_sided * gates->level_k, 1e-30));
            int64_t level = (int64_t)floor(level_db / gates->level_step_db);
            int64_t n_rows = gates->n_rows;
            if (!state[0] || level > state[1]) {
                /* A louder frame: the rows of levels now below the gate are reused by the new top levels. */
                if (state[0]) {
                    int64_t first = state[1] + 1, rise = level - state[1];
                    for (int64_t k = 0; k < (rise < n_rows ? rise : n_rows); k++) {
                        int64_t r = ((first + k) % n_rows + n_rows) % n_rows;
                        memset(sums + r * n_bins, 0, n_bins * sizeof(double));
                        memset(squares + r * n_bins, 0, n_bins * sizeof(double));
                        memset(powers + r * n_bins, 0, n_bins * sizeof(double));
                        counts[r] = 0;
                    }
                }
                state[0] = 1;
                state[1] = level;
            }
            if (level <= state[1] - n_rows)
                continue;
            slot = (level % n_rows + n_rows) % n_rows;
        }
        counts[slot] += 1;
        accumulate_body(row, 1, n_bins, NULL, sums + slot * n_bins, squares + slot * n_bins,
                        powers + slot * n_bins, floor_power);
    }
}

typedef void (*accumulate_fn)(const float *, Py_ssize_t, Py_ssize_t, const int32_t *, double *, double *, double *,
                              float);
typedef void (*frame_power_fn)(const float *, Py_ssize_t, Py_ssize_t, double *, double *);
typedef void (*window_i16_fn)(const int16_t *, Py_ssize_t, Py_ssize_t, Py_ssize_t, const float *, float *);
typedef void (*window_f32_fn)(const float *, Py_ssize_t, Py_ssize_t, Py_ssize_t, const float *, float *);
typedef void (*chunk_fn)(const float *, Py_ssize_t, Py_ssize_t, const gates_t *, int64_t *, int64_t *, double *,
                         double *, double *, float);

#define DEFINE_VARIANT(NAME, ATTR)                                                                                 \
    ATTR static void accumulate_##NAME(const float *spec, Py_ssize_t n_frames, Py_ssize_t n_bins,               \
                                       const int32_t *slots, double *sums, double *squares, double *powers,     \
                                       float floor_power)                                                       \
    {                                                                                                             \
        accumulate_body(spec, n_frames, n_bins, slots, sums, squares, powers, floor_power);                     \
    }                                                                                                             \
    ATTR static void frame_power_##NAME(const float *spec, Py_ssize_t n_frames, Py_ssize_t n_bins,              \
                                        double *two_sided, double *low)                                          \
    {                                                                                                             \
        frame_power_body(spec, n_frames, n_bins, two_sided, low);                                                \
    }                                                                                                             \
    ATTR static void chunk_##NAME(const float *spec, Py_ssize_t n_frames, Py_ssize_t n_bins, const gates_t *gates, \
                                  int64_t *state, int64_t *counts, double *sums, double *squares, double *powers,  \
                                  float floor_power)                                                             \
    {                                                                                                             \
        chunk_body(spec, n_frames, n_bins, gates, state, counts, sums, squares, powers, floor_power);             \
    }                                                                                                             \
    ATTR static void window_i16_##NAME(const int16_t *x, Py_ssize_t n_frames, Py_ssize_t n_fft, Py_ssize_t hop,  \
                                       const float *window, float *out)                                         \
    {                                                                                                             \
        window_i16_body(x, n_frames, n_fft, hop, window, out);                                                   \
    }                                                                                                             \
    ATTR static void window_f32_##NAME(const float *x, Py_ssize_t n_frames, Py_ssize_t n_fft, Py_ssize_t hop,    \
                                       const float *window, float *out)                                         \
    {                                                                                                             \
        window_f32_body(x, n_frames, n_fft, hop, window, out);                                                   \
    }

DEFINE_VARIANT(baseline, )
#ifdef DISPATCH
DEFINE_VARIANT(avx2, TARGET_AVX2)
DEFINE_VARIANT(avx512, TARGET_AVX512)
#endif

static accumulate_fn accumulate_kernel = accumulate_baseline;
static frame_power_fn frame_power_kernel = frame_power_baseline;
static chunk_fn chunk_kernel = chunk_baseline;
static window_i16_fn window_i16_kernel = window_i16_baseline;
static window_f32_fn window_f32_kernel = window_f32_baseline;
static const char *kernel_isa = "baseline";

/* Select the variant named isa ("avx512", "avx2" or "baseline"); 0 on success, -1 when this CPU or build lacks it. */
static int select_kernels(const char *isa)
{
    if (strcmp(isa, "baseline") == 0) {
        accumulate_kernel = accumulate_baseline;
        frame_power_kernel = frame_power_baseline;
        chunk_kernel = chunk_baseline;
        window_i16_kernel = window_i16_baseline;
        window_f32_kernel = window_f32_baseline;
        kernel_isa = "baseline";
        return 0;
    }
#ifdef DISPATCH
    __builtin_cpu_init();
    if (strcmp(isa, "avx512") == 0 && __builtin_cpu_supports("avx512f")) {
        accumulate_kernel = accumulate_avx512;
        frame_power_kernel = frame_power_avx512;
        chunk_kernel = chunk_avx512;
        window_i16_kernel = window_i16_avx512;
        window_f32_kernel = window_f32_avx512;
        kernel_isa = "avx512";
        return 0;
    }
    if (strcmp(isa, "avx2") == 0 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        accumulate_kernel = accumulate_avx2;
        frame_power_kernel = frame_power_avx2;
        chunk_kernel = chunk_avx2;
        window_i16_kernel = window_i16_avx2;
        window_f32_kernel = window_f32_avx2;
        kernel_isa = "avx2";
        return 0;
    }
#endif
    return -1;
}

static PyObject *use_isa(PyObject *self, PyObject *args)
{
    const char *isa;
    (void)self;
    if (!PyArg_ParseTuple(args, "s", &isa))
        return NULL;
    const char *previous = kernel_isa;
    if (select_kernels(isa) < 0) {
        PyErr_Format(PyExc_ValueError, "isa=%R is not available on this CPU (or this build)", PyTuple_GET_ITEM(args, 0));
        return NULL;
    }
    return PyUnicode_FromString(previous);
}

static int check(Py_buffer *b, Py_ssize_t itemsize, Py_ssize_t count, const char *name)
{
    if (b->len != itemsize * count) {
        PyErr_Format(PyExc_ValueError, "%s has %zd bytes, expected %zd", name, b->len, itemsize * count);
        return -1;
    }
    return 0;
}

static PyObject *accumulate(PyObject *self, PyObject *args)
{
    Py_buffer spec, slots = {0}, sums, squares, powers;
    Py_ssize_t n_frames, n_bins, n_slots;
    float floor_power;
    PyObject *slots_obj;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*nnOnw*w*w*f", &spec, &n_frames, &n_bins, &slots_obj, &n_slots, &sums, &squares,
                          &powers, &floor_power))
        return NULL;
    int has_slots = slots_obj != Py_None;
    if (has_slots && PyObject_GetBuffer(slots_obj, &slots, PyBUF_SIMPLE) < 0)
        goto fail;
    if (check(&spec, 8, n_frames * n_bins, "spec") || check(&sums, 8, n_slots * n_bins, "sums") ||
        check(&squares, 8, n_slots * n_bins, "squares") || check(&powers, 8, n_slots * n_bins, "powers") ||
        (has_slots && check(&slots, 4, n_frames, "slots")))
        goto fail;
    if (!has_slots && n_slots < 1 && n_frames > 0) {
        PyErr_SetString(PyExc_ValueError, "slot index out of range");
        goto fail;
    }
    if (has_slots) {
        const int32_t *g = (const int32_t *)slots.buf;
        for (Py_ssize_t f = 0; f < n_frames; f++) {
            if (g[f] >= n_slots) {
                PyErr_SetString(PyExc_ValueError, "slot index out of range");
                goto fail;
            }
        }
    }
    Py_BEGIN_ALLOW_THREADS
    accumulate_kernel((const float *)spec.buf, n_frames, n_bins, has_slots ? (const int32_t *)slots.buf : NULL,
                      (double *)sums.buf, (double *)squares.buf, (double *)powers.buf, floor_power);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&spec);
    PyBuffer_Release(&sums);
    PyBuffer_Release(&squares);
    PyBuffer_Release(&powers);
    if (has_slots)
        PyBuffer_Release(&slots);
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&spec);
    PyBuffer_Release(&sums);
    PyBuffer_Release(&squares);
    PyBuffer_Release(&powers);
    if (has_slots && slots.obj)
        PyBuffer_Release(&slots);
    return NULL;
}

static PyObject *frame_power(PyObject *self, PyObject *args)
{
    Py_buffer spec, two_sided, low;
    Py_ssize_t n_frames, n_bins;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*nnw*w*", &spec, &n_frames, &n_bins, &two_sided, &low))
        return NULL;
    if (n_bins < 1 || check(&spec, 8, n_frames * n_bins, "spec") || check(&two_sided, 8, n_frames, "two_sided") ||
        check(&low, 8, n_frames, "low")) {
        PyBuffer_Release(&spec);
        PyBuffer_Release(&two_sided);
        PyBuffer_Release(&low);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "n_bins must be positive");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    frame_power_kernel((const float *)spec.buf, n_frames, n_bins, (double *)two_sided.buf, (double *)low.buf);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&spec);
    PyBuffer_Release(&two_sided);
    PyBuffer_Release(&low);
    Py_RETURN_NONE;
}

static PyObject *add_chunk(PyObject *self, PyObject *args)
{
    Py_buffer spec, state, counts, sums, squares, powers;
    Py_ssize_t n_frames, n_bins;
    gates_t gates;
    float floor_power;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*nn(ddddLi)w*w*w*w*w*f", &spec, &n_frames, &n_bins, &gates.level_k, &gates.gate_sum,
                          &gates.dc_share, &gates.level_step_db, &gates.n_rows, &gates.relative, &state, &counts,
                          &sums, &squares, &powers, &floor_power))
        return NULL;
    int ok = n_bins >= 1 && gates.n_rows >= 1 && gates.level_step_db > 0 && (gates.relative || gates.n_rows == 1);
    if (!ok)
        PyErr_SetString(PyExc_ValueError, "n_bins, n_rows and level_step_db must be positive (one row without the "
                                          "relative gate)");
    if (!ok || check(&spec, 8, n_frames * n_bins, "spec") || check(&state, 8, STATE_LEN, "state") ||
        check(&counts, 8, gates.n_rows, "counts") || check(&sums, 8, gates.n_rows * n_bins, "sums") ||
        check(&squares, 8, gates.n_rows * n_bins, "squares") || check(&powers, 8, gates.n_rows * n_bins, "powers")) {
        PyBuffer_Release(&spec);
        PyBuffer_Release(&state);
        PyBuffer_Release(&counts);
        PyBuffer_Release(&sums);
        PyBuffer_Release(&squares);
        PyBuffer_Release(&powers);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    chunk_kernel((const float *)spec.buf, n_frames, n_bins, &gates, (int64_t *)state.buf, (int64_t *)counts.buf,
                 (double *)sums.buf, (double *)squares.buf, (double *)powers.buf, floor_power);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&spec);
    PyBuffer_Release(&state);
    PyBuffer_Release(&counts);
    PyBuffer_Release(&sums);
    PyBuffer_Release(&squares);
    PyBuffer_Release(&powers);
    Py_RETURN_NONE;
}

static PyObject *window_frames(PyObject *self, PyObject *args)
{
    Py_buffer x, window, out;
    Py_ssize_t n_frames, n_fft, hop;
    PyObject *x_obj;
    (void)self;
    if (!PyArg_ParseTuple(args, "Onnny*w*", &x_obj, &n_frames, &n_fft, &hop, &window, &out))
        return NULL;
    if (PyObject_GetBuffer(x_obj, &x, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&window);
        PyBuffer_Release(&out);
        return NULL;
    }
    int is_i16 = x.itemsize == 2 && x.format && strcmp(x.format, "h") == 0;
    int is_f32 = x.itemsize == 4 && x.format && strcmp(x.format, "f") == 0;
    int ok = 0;
    if (!is_i16 && !is_f32)
        PyErr_SetString(PyExc_TypeError, "x must hold int16 or float32 samples");
    else if (n_frames < 0 || n_fft < 1 || hop < 1)
        PyErr_SetString(PyExc_ValueError, "n_frames must be >= 0, n_fft and hop positive");
    else if (n_frames > 0 && x.len < ((n_frames - 1) * hop + n_fft) * x.itemsize)
        PyErr_SetString(PyExc_ValueError, "x is shorter than the frames asked for");
    else if (!check(&window, 4, n_fft, "window") && !check(&out, 4, n_frames * n_fft, "out"))
        ok = 1;
    if (ok) {
        Py_BEGIN_ALLOW_THREADS
        if (is_i16)
            window_i16_kernel((const int16_t *)x.buf, n_frames, n_fft, hop, (const float *)window.buf,
                              (float *)out.buf);
        else
            window_f32_kernel((const float *)x.buf, n_frames, n_fft, hop, (const float *)window.buf, (float *)out.buf);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&x);
    PyBuffer_Release(&window);
    PyBuffer_Release(&out);
    if (!ok)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *get_isa(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyUnicode_FromString(kernel_isa);
}

static PyMethodDef methods[] = {
    {"accumulate", accumulate, METH_VARARGS,
     "accumulate(spec, n_frames, n_bins, slots, n_slots, sums, squares, powers, floor_power): in one pass, add "
     "each frame's log power (dB), its square and its linear power to row slots[f] of sums, squares and powers "
     "(complex64 spec, int32 slots or None for row 0, float64 rows; slot -1 skips a frame)."},
    {"frame_power", frame_power, METH_VARARGS,
     "frame_power(spec, n_frames, n_bins, two_sided, low): each frame's two-sided power sum, and the two-sided "
     "power of bins 0 and 1, into float64 arrays."},
    {"add_chunk", add_chunk, METH_VARARGS,
     "add_chunk(spec, n_frames, n_bins, (level_k, gate_sum, dc_share, level_step_db, n_rows, relative), state, "
     "counts, sums, squares, powers, floor_power): gate each frame of a complex64 chunk (DC rule, absolute gate, "
     "relative gate on a ring of n_rows level rows) and add the frames that count to their row, in one pass. "
     "state: int64 [has_top, top, n_dc, top level outside bins 0-1, DC_LEVELS level bins of DC frames]; counts: int64 per row; gate_sum < 0: no absolute gate."},
    {"window_frames", window_frames, METH_VARARGS,
     "window_frames(x, n_frames, n_fft, hop, window, out): out[f, j] = x[f * hop + j] * window[j] for int16 or "
     "float32 samples x (C-contiguous), float32 window and out."},
    {"use_isa", use_isa, METH_VARARGS,
     "use_isa(isa): run the variant compiled for isa ('avx512', 'avx2' or 'baseline') from now on; returns the "
     "previous one. ValueError when this CPU or build lacks it. The best variant is chosen at import."},
    {"isa", get_isa, METH_NOARGS, "isa(): the instruction set of the variant in use."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_logpower", "Fused statistics kernel of the profile path.",
                                    -1, methods};

PyMODINIT_FUNC PyInit__logpower(void)
{
    if (select_kernels("avx512") < 0 && select_kernels("avx2") < 0)
        select_kernels("baseline");
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "DC_LEVEL_LOW", DC_LEVEL_LOW) < 0 ||
        PyModule_AddIntConstant(m, "DC_LEVELS", DC_LEVELS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
