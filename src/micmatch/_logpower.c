/*
 * Fused hot path of micmatch's spectral statistics (spectral.LogPowerAccumulator):
 * complex spectrum -> power -> floor -> log power in dB -> per-bin sums of the dB values, of their squares and of
 * the linear power, in one pass, into the row (slot) of each frame's level bin.
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

typedef void (*accumulate_fn)(const float *, Py_ssize_t, Py_ssize_t, const int32_t *, double *, double *, double *,
                              float);
typedef void (*frame_power_fn)(const float *, Py_ssize_t, Py_ssize_t, double *, double *);

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
    }

DEFINE_VARIANT(baseline, )
#ifdef DISPATCH
DEFINE_VARIANT(avx2, TARGET_AVX2)
DEFINE_VARIANT(avx512, TARGET_AVX512)
#endif

static accumulate_fn accumulate_kernel = accumulate_baseline;
static frame_power_fn frame_power_kernel = frame_power_baseline;
static const char *kernel_isa = "baseline";

/* Select the variant named isa ("avx512", "avx2" or "baseline"); 0 on success, -1 when this CPU or build lacks it. */
static int select_kernels(const char *isa)
{
    if (strcmp(isa, "baseline") == 0) {
        accumulate_kernel = accumulate_baseline;
        frame_power_kernel = frame_power_baseline;
        kernel_isa = "baseline";
        return 0;
    }
#ifdef DISPATCH
    __builtin_cpu_init();
    if (strcmp(isa, "avx512") == 0 && __builtin_cpu_supports("avx512f")) {
        accumulate_kernel = accumulate_avx512;
        frame_power_kernel = frame_power_avx512;
        kernel_isa = "avx512";
        return 0;
    }
    if (strcmp(isa, "avx2") == 0 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        accumulate_kernel = accumulate_avx2;
        frame_power_kernel = frame_power_avx2;
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
    return PyModule_Create(&module);
}
