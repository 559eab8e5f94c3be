/*
 * runner_common.h - the part of edgefm's native runners that does not depend on
 * the runtime: command line, .npy files, int8 (de)quantization, the golden-output
 * comparison, exit codes. Included by runner_litert.c and runner_onnxruntime.c;
 * each of those supplies a Backend (open a model, run it) and calls runner_main().
 *
 * No Python anywhere: the runtime library is dlopen()ed by absolute path, so the
 * runner needs neither LD_LIBRARY_PATH nor any other environment variable.
 *
 * Build (one line, the header beside the .c file):
 *     cc -O2 -o runner runner_litert.c -ldl
 *
 * Files are NumPy .npy (format 1.0 written; 1.0-3.0 read; little-endian; C order;
 * float32, float16, int8, uint8, int16, int32, int64, bool). Data is copied byte for
 * byte between the file and the runtime: float16 is never widened, bool is one byte
 * per element (NumPy and both runtimes store 0/1 in a byte).
 *
 * Exit status: 0 ok, 2 usage, 3 runtime library unusable, 4 model cannot be
 * loaded, 5 input file unreadable, 6 input does not fit the model (shape, dtype,
 * name), 7 the run failed, 8 an output could not be written, 9 check: outputs
 * differ from the expected ones beyond the tolerance.
 */
#ifndef EDGEFM_RUNNER_COMMON_H
#define EDGEFM_RUNNER_COMMON_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <dlfcn.h>
#include <errno.h>
#include <math.h> /* HUGE_VAL only: no libm needed */
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#elif defined(__aarch64__)
#include <sys/auxv.h>
#endif

enum {
    RC_OK = 0,
    RC_USAGE = 2,
    RC_LIBRARY = 3,
    RC_MODEL = 4,
    RC_INPUT = 5,
    RC_SHAPE = 6,
    RC_RUN = 7,
    RC_OUTPUT = 8,
    RC_MISMATCH = 9,
};

#define MAX_RANK 8
#define MAX_TENSORS 16
#define MAX_NAME 256
#define ERR_LEN 2048
/* LiteRT requires host buffers aligned to 64 bytes; ONNX Runtime is happy with it too. */
#define HOST_ALIGN 64

typedef enum { DT_INVALID = 0, DT_F32, DT_I8, DT_U8, DT_I32, DT_I64, DT_F16, DT_I16, DT_BOOL } DType;

/* A dense, C-ordered host tensor. */
typedef struct {
    DType dtype;
    int rank;
    int64_t dims[MAX_RANK];
    void *data;
    size_t nbytes;
} Tensor;

/* What the model says about one of its inputs or outputs. dims: -1 = dynamic. */
typedef struct {
    char name[MAX_NAME];
    DType dtype;
    int rank;
    int64_t dims[MAX_RANK];
    bool quantized; /* per-tensor affine int8/uint8/int16: real = (q - zero_point) * scale */
    float scale;
    int32_t zero_point;
} TensorInfo;

typedef struct {
    int n_inputs, n_outputs;
    TensorInfo inputs[MAX_TENSORS];
    TensorInfo outputs[MAX_TENSORS];
    char runtime_version[128];
} ModelInfo;

/* One runtime. Functions return an RC_* code and fill `err` on failure. */
typedef struct {
    const char *runtime;  /* "LiteRT" */
    const char *lib_name; /* "libLiteRt.so" */
    const char *install;  /* how to get the library */
    const char *lib_env;  /* environment variable naming the library when --lib is absent */
    int (*open)(const char *lib, const char *model, int threads, ModelInfo *info, char *err, size_t errlen);
    /* inputs are in the model's own dtypes; outputs get freshly allocated data (free with free()). */
    int (*run)(const Tensor *inputs, Tensor *outputs, char *err, size_t errlen);
    void (*close)(void);
} Backend;

static const char *g_prog = "runner";
/* --signature KEY: the model signature to run (.tflite; ONNX has one graph). NULL: the first one.
 * edgefm passes its serving signature's key (edgefm/core/contract.py), so the name lives in one place. */
static const char *g_signature = NULL;

/* -- crashes ------------------------------------------------------------------------------ */

/* A C++ runtime may crash on a malformed file (LiteRT reads truncated .tflite files past
 * their end: SIGBUS). Say so in plain words on stderr, then die by the same signal so a
 * caller still sees the signal. Only write() is used in the handler (async-signal-safe). */
static char g_crash_what[1536];

static void put(const char *s) {
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

static void on_crash(int sig) {
    const char *name = sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS" : sig == SIGFPE ? "SIGFPE"
                     : sig == SIGILL ? "SIGILL" : "SIGABRT";
    put(g_prog);
    put(": error: the runtime crashed (");
    put(name);
    put(") ");
    put(g_crash_what);
    put(": the file is corrupt or truncated, or the runtime cannot handle it\n");
    raise(sig); /* SA_RESETHAND: the default action, once the handler returns */
}

static void set_crash_context(const char *fmt, const char *arg) {
    snprintf(g_crash_what, sizeof g_crash_what, fmt, arg);
}

static void install_crash_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_crash;
    sa.sa_flags = (int)SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
}

static int fail(int rc, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: error: ", g_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return rc;
}

static int set_err(char *err, size_t errlen, int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

/* -- dtypes ------------------------------------------------------------------------ */

static const char *dtype_name(DType t) {
    switch (t) {
        case DT_F32: return "float32";
        case DT_I8: return "int8";
        case DT_U8: return "uint8";
        case DT_I32: return "int32";
        case DT_I64: return "int64";
        case DT_F16: return "float16";
        case DT_I16: return "int16";
        case DT_BOOL: return "bool"; /* NumPy's names: Python reads them back with np.dtype(name) */
        default: return "unsupported";
    }
}

static size_t dtype_size(DType t) {
    switch (t) {
        case DT_F32: case DT_I32: return 4;
        case DT_I8: case DT_U8: case DT_BOOL: return 1;
        case DT_F16: case DT_I16: return 2;
        case DT_I64: return 8;
        default: return 0;
    }
}

static const char *dtype_descr(DType t) {
    switch (t) {
        case DT_F32: return "<f4";
        case DT_I8: return "|i1";
        case DT_U8: return "|u1";
        case DT_I32: return "<i4";
        case DT_I64: return "<i8";
        case DT_F16: return "<f2";
        case DT_I16: return "<i2";
        case DT_BOOL: return "|b1";
        default: return "";
    }
}

static DType dtype_from_descr(const char *d) {
    /* byte order: '<' little, '|' not applicable, '=' native (little on the hosts we accept) */
    if (d[0] == '<' || d[0] == '|' || d[0] == '=') d++;
    else if (d[0] == '>') return DT_INVALID;
    if (strcmp(d, "f4") == 0) return DT_F32;
    if (strcmp(d, "i1") == 0) return DT_I8;
    if (strcmp(d, "u1") == 0) return DT_U8;
    if (strcmp(d, "i4") == 0) return DT_I32;
    if (strcmp(d, "i8") == 0) return DT_I64;
    if (strcmp(d, "f2") == 0) return DT_F16;
    if (strcmp(d, "i2") == 0) return DT_I16;
    if (strcmp(d, "b1") == 0) return DT_BOOL; /* np.save writes '|b1'; '?' is the same dtype's char code */
    if (strcmp(d, "?") == 0) return DT_BOOL;
    return DT_INVALID;
}

static int64_t num_elements(int rank, const int64_t *dims) {
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    return n;
}

static void format_dims(char *buf, size_t len, int rank, const int64_t *dims) {
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < rank && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%lld", i ? "," : "", (long long)dims[i]);
}

/* "[N,28,28]" with N for dynamic dimensions, for messages. */
static void format_shape(char *buf, size_t len, int rank, const int64_t *dims) {
    size_t off = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < rank && off < len; i++) {
        if (dims[i] < 0) off += (size_t)snprintf(buf + off, len - off, "%sN", i ? "," : "");
        else off += (size_t)snprintf(buf + off, len - off, "%s%lld", i ? "," : "", (long long)dims[i]);
    }
    if (off < len) snprintf(buf + off, len - off, "]");
}

static void *host_alloc(size_t nbytes) {
    void *p = NULL;
    size_t n = (nbytes + HOST_ALIGN - 1) / HOST_ALIGN * HOST_ALIGN;
    if (n == 0) n = HOST_ALIGN;
    if (posix_memalign(&p, HOST_ALIGN, n) != 0) return NULL;
    memset(p, 0, n);
    return p;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static bool host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* -- .npy ---------------------------------------------------------------------------- */

static const char *find_key(const char *header, const char *key) {
    const char *p = strstr(header, key);
    if (!p) return NULL;
    p = strchr(p + strlen(key), ':');
    if (!p) return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

static int npy_read(const char *path, Tensor *t, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f) return set_err(err, errlen, RC_INPUT, "cannot open %s: %s", path, strerror(errno));
    unsigned char pre[12];
    int rc = RC_INPUT;
    char *header = NULL;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        set_err(err, errlen, rc, "%s is not a .npy file (no \\x93NUMPY magic)", path);
        goto done;
    }
    uint32_t hlen;
    long data_off;
    if (pre[6] == 1) {
        hlen = (uint32_t)pre[8] | ((uint32_t)pre[9] << 8);
        data_off = 10 + (long)hlen;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, f) != 2) {
            set_err(err, errlen, rc, "%s is truncated inside its .npy header", path);
            goto done;
        }
        hlen = (uint32_t)pre[8] | ((uint32_t)pre[9] << 8) | ((uint32_t)pre[10] << 16) | ((uint32_t)pre[11] << 24);
        data_off = 12 + (long)hlen;
    } else {
        set_err(err, errlen, rc, "%s: unsupported .npy format version %d", path, pre[6]);
        goto done;
    }
    if (hlen > (1u << 20)) {
        set_err(err, errlen, rc, "%s: implausible .npy header length %u", path, hlen);
        goto done;
    }
    header = calloc(hlen + 1, 1);
    if (!header || fread(header, 1, hlen, f) != hlen) {
        set_err(err, errlen, rc, "%s is truncated inside its .npy header", path);
        goto done;
    }
    const char *d = find_key(header, "'descr'");
    if (!d || (*d != '\'' && *d != '"')) {
        set_err(err, errlen, rc, "%s: .npy header has no 'descr'", path);
        goto done;
    }
    char descr[16] = {0};
    const char *e = strchr(d + 1, *d);
    if (!e || (size_t)(e - d - 1) >= sizeof descr) {
        set_err(err, errlen, rc, "%s: malformed 'descr' in .npy header", path);
        goto done;
    }
    memcpy(descr, d + 1, (size_t)(e - d - 1));
    t->dtype = dtype_from_descr(descr);
    if (t->dtype == DT_INVALID) {
        set_err(err, errlen, RC_SHAPE, "%s: dtype '%s' is not supported (use float32, float16, int8, uint8, int16, int32, int64 or bool, little-endian)", path, descr);
        rc = RC_SHAPE;
        goto done;
    }
    const char *fo = find_key(header, "'fortran_order'");
    if (!fo || strncmp(fo, "False", 5) != 0) {
        set_err(err, errlen, rc, "%s: only C-ordered arrays are supported (fortran_order must be False)", path);
        goto done;
    }
    const char *s = find_key(header, "'shape'");
    if (!s || *s != '(') {
        set_err(err, errlen, rc, "%s: .npy header has no 'shape'", path);
        goto done;
    }
    s++;
    t->rank = 0;
    for (;;) {
        while (*s == ' ' || *s == ',') s++;
        if (*s == ')') break;
        char *end;
        long long v = strtoll(s, &end, 10);
        if (end == s || v < 0 || t->rank >= MAX_RANK) {
            set_err(err, errlen, rc, "%s: malformed or too long 'shape' in .npy header", path);
            goto done;
        }
        t->dims[t->rank++] = v;
        s = end;
        if (*s == 'L') s++;
    }
    t->nbytes = (size_t)num_elements(t->rank, t->dims) * dtype_size(t->dtype);
    if (fseek(f, 0, SEEK_END) != 0) {
        set_err(err, errlen, rc, "cannot seek in %s", path);
        goto done;
    }
    long size = ftell(f);
    if (size < 0 || (size_t)(size - data_off) != t->nbytes) {
        char shp[96];
        format_dims(shp, sizeof shp, t->rank, t->dims);
        set_err(err, errlen, rc, "%s declares shape (%s) of %s, %zu bytes of data, but holds %ld: it is truncated or padded",
                path, shp, dtype_name(t->dtype), t->nbytes, size - data_off);
        goto done;
    }
    t->data = host_alloc(t->nbytes);
    if (!t->data) {
        set_err(err, errlen, rc, "out of memory reading %s (%zu bytes)", path, t->nbytes);
        goto done;
    }
    if (fseek(f, data_off, SEEK_SET) != 0 || fread(t->data, 1, t->nbytes, f) != t->nbytes) {
        set_err(err, errlen, rc, "cannot read the data of %s", path);
        free(t->data);
        t->data = NULL;
        goto done;
    }
    rc = RC_OK;
done:
    free(header);
    fclose(f);
    return rc;
}

/* Write `t` to `path` through a temporary file and rename(): never half-written. */
static int npy_write(const char *path, const Tensor *t, char *err, size_t errlen) {
    char dict[512], shp[256];
    size_t off = 0;
    shp[0] = '\0';
    for (int i = 0; i < t->rank; i++) off += (size_t)snprintf(shp + off, sizeof shp - off, "%lld, ", (long long)t->dims[i]);
    if (t->rank == 1) shp[off - 1] = '\0'; /* "(4,)" */
    else if (t->rank > 1) shp[off - 2] = '\0';
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", dtype_descr(t->dtype), shp);
    size_t total = 10 + (size_t)n + 1; /* + '\n' */
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = (size_t)n + pad + 1;
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return set_err(err, errlen, RC_OUTPUT, "output path too long: %s", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return set_err(err, errlen, RC_OUTPUT, "cannot create %s: %s", tmp, strerror(errno));
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff), (unsigned char)(hlen >> 8)};
    bool ok = fwrite(pre, 1, 10, f) == 10 && fwrite(dict, 1, (size_t)n, f) == (size_t)n;
    for (size_t i = 0; ok && i < pad; i++) ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF && fwrite(t->data, 1, t->nbytes, f) == t->nbytes;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return set_err(err, errlen, RC_OUTPUT, "cannot write %s: %s", path, strerror(e));
    }
    return RC_OK;
}

/* -- quantization ------------------------------------------------------------------------ */

/* Round half to even without libm (so the one-line build needs no -lm); matches np.round. */
static float round_half_even(float v) {
    if (!(v > -1e9f && v < 1e9f)) return v; /* huge or NaN: the caller clamps */
    long long t = (long long)v;             /* toward zero */
    float frac = v - (float)t;              /* exact for floats */
    if (frac > 0.5f || (frac == 0.5f && (t & 1))) t += 1;
    else if (frac < -0.5f || (frac == -0.5f && (t & 1))) t -= 1;
    return (float)t;
}

/* The integer dtypes a per-tensor scale makes real-valued: int8/uint8, and int16 (TFLite's
 * 16x8 mode: int16 activations, zero point 0). */
static bool quantizable(DType t) { return t == DT_I8 || t == DT_U8 || t == DT_I16; }

/* float32 -> int8/uint8/int16 exactly as edgefm's Python side does it:
 * clip(round(x / scale) + zero_point, min, max), all in float32. */
static void quantize(const float *x, size_t n, const TensorInfo *ti, void *out) {
    const float lo = ti->dtype == DT_I8 ? -128.0f : ti->dtype == DT_I16 ? -32768.0f : 0.0f;
    const float hi = ti->dtype == DT_I8 ? 127.0f : ti->dtype == DT_I16 ? 32767.0f : 255.0f;
    for (size_t i = 0; i < n; i++) {
        float q = round_half_even(x[i] / ti->scale) + (float)ti->zero_point;
        if (q != q) q = (float)ti->zero_point;
        if (q < lo) q = lo;
        if (q > hi) q = hi;
        if (ti->dtype == DT_I8) ((int8_t *)out)[i] = (int8_t)q;
        else if (ti->dtype == DT_I16) ((int16_t *)out)[i] = (int16_t)q;
        else ((uint8_t *)out)[i] = (uint8_t)q;
    }
}

/* int8/uint8/int16 -> float32: (q - zero_point) * scale, in float32. */
static void dequantize(const void *q, size_t n, const TensorInfo *ti, float *out) {
    const float zp = (float)ti->zero_point;
    for (size_t i = 0; i < n; i++) {
        float v = ti->dtype == DT_I8    ? (float)((const int8_t *)q)[i]
                : ti->dtype == DT_I16 ? (float)((const int16_t *)q)[i]
                                      : (float)((const uint8_t *)q)[i];
        out[i] = (v - zp) * ti->scale;
    }
}

/* -- command line ------------------------------------------------------------------------ */

typedef struct {
    const char *name;
    const char *path;
    double atol;
    bool has_atol;
} NamedPath;

typedef struct {
    const char *mode;
    const char *lib;
    const char *model;
    const char *output_dir;
    NamedPath inputs[MAX_TENSORS];
    int n_inputs;
    NamedPath expects[MAX_TENSORS];
    int n_expects;
    double atol;
    int threads;
    int repeat;
    int warmup;
    bool timed; /* --runs given: print every timed call's latency on a `latencies` line */
    long batch_size;
    bool raw;
} Args;

static void usage(FILE *out, const Backend *be) {
    fprintf(out,
            "usage: %s MODE --model FILE [--lib PATH] [options]\n"
            "\n"
            "Runs a model with %s (%s) without Python. Tensors are NumPy .npy files.\n"
            "\n"
            "modes:\n"
            "  info   print the model's inputs and outputs (name, dtype, shape, scale, zero point)\n"
            "  run    --input NAME=FILE... --output-dir DIR: write every output as DIR/NAME.npy\n"
            "  check  --input NAME=FILE... --expect NAME=FILE...: compare outputs with expected\n"
            "         ones; exit 0 if every float32 max abs difference is <= its tolerance and\n"
            "         every other dtype matches exactly, else 9\n"            "  serve  load the model once, print info and a `ready` line, then read requests from\n"
            "         stdin, one a line: the options of a run, separated by tabs; answer each with\n"
            "         what run prints and a `done<TAB>STATUS` line (STATUS: run's exit status).\n"
            "         An empty line or end of input ends it\n"
            "\n"
            "options:\n"
            "  --lib PATH          the runtime library (default: $%s)\n"
            "  --input NAME=FILE   an input tensor (FILE alone if the model has one input);\n"
            "                      float32 data is quantized for quantized int8/uint8/int16\n"
            "                      model inputs; any other dtype must be the model's own\n"
            "  --output-dir DIR    where run (and check, if given) writes outputs\n"
            "  --expect NAME=FILE  expected output (check)\n"
            "  --atol X | NAME=X   tolerance for all / one output (check; default 1e-5)\n"
            "  --raw               write quantized outputs as stored, not dequantized to float32\n"
            "  --signature KEY     the signature to run (.tflite; default: the first one)\n"
            "  --threads N         intra-op threads where the runtime supports it\n"
            "  --batch-size N      run the inputs in chunks of N along the first dimension,\n"
            "                      outputs concatenated (default: all at once)\n"
            "  --repeat N          run every batch N times and report the timings\n"
            "  --warmup W          run every batch W times untimed first (warm caches, lazy init)\n"
            "  --runs N            like --repeat N, and print each timed call's milliseconds on a\n"
            "                      `latencies` line; `timing` gives their p50/p99: a warm in-process\n"
            "                      loop, no process start in the figures\n"
            "\n"
            "exit status: 0 ok, 2 usage, 3 library, 4 model load, 5 input file, 6 input does not\n"
            "fit the model, 7 run failed, 8 output write, 9 check mismatch\n",
            g_prog, be->runtime, be->lib_name, be->lib_env);
}

static int parse_named(const char *arg, NamedPath *np) {
    const char *eq = strchr(arg, '=');
    memset(np, 0, sizeof *np);
    if (!eq) {
        np->path = arg;
        return 0;
    }
    size_t n = (size_t)(eq - arg);
    char *name = malloc(n + 1);
    if (!name) return -1;
    memcpy(name, arg, n);
    name[n] = '\0';
    np->name = name;
    np->path = eq + 1;
    return 0;
}

static int parse_args(int argc, char **argv, const Backend *be, Args *a) {
    memset(a, 0, sizeof *a);
    a->atol = 1e-5;
    a->repeat = 1;
    NamedPath atols[MAX_TENSORS];
    int n_atols = 0;
    if (argc < 2) {
        usage(stderr, be);
        return RC_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout, be);
        return -1;
    }
    a->mode = argv[1];
    if (strcmp(a->mode, "info") && strcmp(a->mode, "run") && strcmp(a->mode, "check") && strcmp(a->mode, "serve"))
        return fail(RC_USAGE, "unknown mode '%s' (use info, run, check or serve; --help for help)", a->mode);
    for (int i = 2; i < argc; i++) {
        const char *opt = argv[i];
        bool has_val = i + 1 < argc;
        const char *val = has_val ? argv[i + 1] : NULL;
        if (strcmp(opt, "--raw") == 0) {
            a->raw = true;
            continue;
        }
        if (strcmp(opt, "-h") == 0 || strcmp(opt, "--help") == 0) {
            usage(stdout, be);
            return -1;
        }
        if (!has_val) return fail(RC_USAGE, "option %s needs a value", opt);
        i++;
        if (strcmp(opt, "--lib") == 0) a->lib = val;
        else if (strcmp(opt, "--model") == 0) a->model = val;
        else if (strcmp(opt, "--output-dir") == 0) a->output_dir = val;
        else if (strcmp(opt, "--signature") == 0) g_signature = val;
        else if (strcmp(opt, "--input") == 0 || strcmp(opt, "--expect") == 0) {
            bool in = opt[2] == 'i';
            int *n = in ? &a->n_inputs : &a->n_expects;
            if (*n >= MAX_TENSORS) return fail(RC_USAGE, "too many %s options", opt);
            if (parse_named(val, in ? &a->inputs[*n] : &a->expects[*n]) != 0) return fail(RC_USAGE, "out of memory");
            if (!in && !a->expects[*n].name) return fail(RC_USAGE, "--expect needs NAME=FILE, got '%s'", val);
            (*n)++;
        } else if (strcmp(opt, "--atol") == 0) {
            char *end;
            const char *eq = strchr(val, '=');
            if (!eq) {
                a->atol = strtod(val, &end);
                if (*end || a->atol < 0) return fail(RC_USAGE, "--atol: '%s' is not a non-negative number", val);
            } else {
                if (n_atols >= MAX_TENSORS) return fail(RC_USAGE, "too many --atol options");
                if (parse_named(val, &atols[n_atols]) != 0) return fail(RC_USAGE, "out of memory");
                atols[n_atols].atol = strtod(eq + 1, &end);
                if (*end || atols[n_atols].atol < 0) return fail(RC_USAGE, "--atol: '%s' is not NAME=non-negative number", val);
                n_atols++;
            }
        } else if (strcmp(opt, "--threads") == 0 || strcmp(opt, "--repeat") == 0 || strcmp(opt, "--batch-size") == 0 ||
                   strcmp(opt, "--runs") == 0 || strcmp(opt, "--warmup") == 0) {
            char *end;
            long v = strtol(val, &end, 10);
            if (*end || v < 0 || v > 100000000) return fail(RC_USAGE, "%s: '%s' is not a non-negative integer", opt, val);
            if (strcmp(opt, "--threads") == 0) a->threads = (int)v;
            else if (strcmp(opt, "--repeat") == 0) a->repeat = v < 1 ? 1 : (int)v;
            else if (strcmp(opt, "--runs") == 0) {
                if (v < 1) return fail(RC_USAGE, "--runs: '%s' must be at least 1", val);
                a->repeat = (int)v;
                a->timed = true;
            } else if (strcmp(opt, "--warmup") == 0) a->warmup = (int)v;
            else a->batch_size = v;
        } else {
            return fail(RC_USAGE, "unknown option %s (--help for help)", opt);
        }
    }
    for (int k = 0; k < n_atols; k++) {
        bool found = false;
        for (int j = 0; j < a->n_expects; j++)
            if (strcmp(a->expects[j].name, atols[k].name) == 0) {
                a->expects[j].atol = atols[k].atol;
                a->expects[j].has_atol = found = true;
            }
        if (!found) return fail(RC_USAGE, "--atol %s=...: no --expect names output '%s'", atols[k].name, atols[k].name);
    }
    if (!a->model) return fail(RC_USAGE, "--model FILE is required");
    if (!a->lib) a->lib = getenv(be->lib_env);
    if (!a->lib || !*a->lib)
        return fail(RC_USAGE, "no runtime library given: pass --lib /path/to/%s or set %s (%s)", be->lib_name, be->lib_env, be->install);
    if (strcmp(a->mode, "run") == 0 && !a->output_dir) return fail(RC_USAGE, "run needs --output-dir DIR");
    if (strcmp(a->mode, "check") == 0 && a->n_expects == 0) return fail(RC_USAGE, "check needs at least one --expect NAME=FILE");
    if (strcmp(a->mode, "info") != 0 && strcmp(a->mode, "serve") != 0 && a->n_inputs == 0)
        return fail(RC_USAGE, "%s needs --input NAME=FILE", a->mode);
    return RC_OK;
}

/* File name for an output: its name with anything outside [A-Za-z0-9._-] replaced by '_'. */
static void output_path(char *buf, size_t len, const char *dir, const char *name) {
    char safe[MAX_NAME];
    size_t i = 0;
    for (; name[i] && i < sizeof safe - 1; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        safe[i] = ok ? c : '_';
    }
    safe[i] = '\0';
    if (i == 0 || safe[0] == '.') safe[0] = '_';
    snprintf(buf, len, "%s/%s.npy", dir, safe);
}

/*
 * "cpu<TAB>ARCH<TAB>feature..." : the instruction-set features the runtimes choose
 * their kernels by, as this process sees them. Asked of the CPU itself (cpuid,
 * the auxiliary vector), not of /proc/cpuinfo, so under qemu user-mode emulation
 * it names the emulated CPU (qemu shows the guest the host's /proc/cpuinfo).
 * Names match edgefm/hostinfo.py.
 */
static void print_cpu(void) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned a = 0, b = 0, c = 0, d = 0, a1 = 0, b1 = 0, c1 = 0, d1 = 0;
    printf("cpu\tx86_64");
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        if (b & (1u << 5)) printf("\tavx2");
        if (b & (1u << 16)) printf("\tavx512f");
        if (b & (1u << 30)) printf("\tavx512bw");
        if (c & (1u << 11)) printf("\tavx512vnni");
        if (d & (1u << 25)) printf("\tamx-int8");
        if (a >= 1 && __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1) && (a1 & (1u << 4))) printf("\tavxvnni");
    }
    printf("\n");
#elif defined(__aarch64__)
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    printf("cpu\taarch64");
    if (hw & (1ul << 1)) printf("\tneon");
    if (hw & (1ul << 20)) printf("\tdotprod");
    if (hw2 & (1ul << 13)) printf("\ti8mm");
    if (hw & (1ul << 22)) printf("\tsve");
    if (hw2 & (1ul << 1)) printf("\tsve2");
    printf("\n");
#else
    printf("cpu\tunknown\n");
#endif
}

static void print_info(const ModelInfo *mi, const Backend *be) {
    printf("runtime\t%s\t%s\n", be->runtime, mi->runtime_version[0] ? mi->runtime_version : "unknown");
    print_cpu();
    for (int k = 0; k < 2; k++) {
        int n = k ? mi->n_outputs : mi->n_inputs;
        const TensorInfo *ts = k ? mi->outputs : mi->inputs;
        for (int i = 0; i < n; i++) {
            char dims[128];
            format_dims(dims, sizeof dims, ts[i].rank, ts[i].dims);
            if (ts[i].quantized)
                printf("%s\t%s\t%s\t%s\t%.17g\t%d\n", k ? "output" : "input", ts[i].name, dtype_name(ts[i].dtype), dims,
                       (double)ts[i].scale, (int)ts[i].zero_point);
            else
                printf("%s\t%s\t%s\t%s\t-\t-\n", k ? "output" : "input", ts[i].name, dtype_name(ts[i].dtype), dims);
        }
    }
}

/* Match the given input files to the model's inputs and convert them to its dtypes. */
static int prepare_inputs(const Args *a, const ModelInfo *mi, Tensor *feeds) {
    char err[ERR_LEN], names[MAX_TENSORS * (MAX_NAME + 2)];
    size_t off = 0;
    names[0] = '\0';
    for (int i = 0; i < mi->n_inputs && off < sizeof names; i++)
        off += (size_t)snprintf(names + off, sizeof names - off, "%s%s", i ? ", " : "", mi->inputs[i].name);
    for (int j = 0; j < a->n_inputs; j++) {
        const char *nm = a->inputs[j].name;
        bool known = false;
        for (int i = 0; i < mi->n_inputs && nm; i++) known = known || strcmp(mi->inputs[i].name, nm) == 0;
        if (nm && !known) return fail(RC_SHAPE, "the model has no input named '%s' (its inputs: %s)", nm, names);
        if (!nm && mi->n_inputs != 1)
            return fail(RC_USAGE, "--input %s has no NAME= but the model has %d inputs (%s)", a->inputs[j].path, mi->n_inputs, names);
        for (int k = 0; k < j; k++)
            if (nm && a->inputs[k].name && strcmp(a->inputs[k].name, nm) == 0)
                return fail(RC_USAGE, "--input %s= is given twice", nm);
    }
    for (int i = 0; i < mi->n_inputs; i++) {
        const TensorInfo *ti = &mi->inputs[i];
        const NamedPath *src = NULL;
        for (int j = 0; j < a->n_inputs; j++)
            if (!a->inputs[j].name || strcmp(a->inputs[j].name, ti->name) == 0) src = &a->inputs[j];
        if (!src) return fail(RC_SHAPE, "no --input given for the model's input '%s'", ti->name);
        Tensor t;
        int rc = npy_read(src->path, &t, err, sizeof err);
        if (rc) return fail(rc, "input '%s': %s", ti->name, err);
        char want[128], got[128];
        format_shape(want, sizeof want, ti->rank, ti->dims);
        format_shape(got, sizeof got, t.rank, t.dims);
        bool fits = t.rank == ti->rank;
        for (int d = 0; fits && d < t.rank; d++) fits = ti->dims[d] < 0 || ti->dims[d] == t.dims[d];
        if (!fits) {
            free(t.data);
            return fail(RC_SHAPE, "input tensor shape mismatch: '%s' in %s has shape %s, the model takes %s", ti->name, src->path, got, want);
        }
        if (t.dtype == ti->dtype) {
            feeds[i] = t;
        } else if (t.dtype == DT_F32 && ti->quantized && quantizable(ti->dtype)) {
            size_t n = (size_t)num_elements(t.rank, t.dims);
            feeds[i] = t;
            feeds[i].dtype = ti->dtype;
            feeds[i].nbytes = n * dtype_size(ti->dtype);
            feeds[i].data = host_alloc(feeds[i].nbytes);
            if (!feeds[i].data) {
                free(t.data);
                return fail(RC_INPUT, "out of memory");
            }
            quantize((const float *)t.data, n, ti, feeds[i].data);
            free(t.data);
        } else {
            free(t.data);
            return fail(RC_SHAPE, "input '%s' in %s is %s, the model takes %s%s", ti->name, src->path, dtype_name(t.dtype),
                        dtype_name(ti->dtype), ti->quantized ? " (or float32, which is quantized)" : "");
        }
    }
    return RC_OK;
}

/* Outputs as the caller wants them: dequantized to float32 unless --raw. */
static int finish_output(const TensorInfo *ti, Tensor *t, bool raw) {
    if (raw || !ti->quantized || !quantizable(t->dtype)) return RC_OK;
    size_t n = (size_t)num_elements(t->rank, t->dims);
    float *f = host_alloc(n * sizeof(float));
    if (!f) return fail(RC_OUTPUT, "out of memory");
    TensorInfo q = *ti;
    q.dtype = t->dtype;
    dequantize(t->data, n, &q, f);
    free(t->data);
    t->data = f;
    t->dtype = DT_F32;
    t->nbytes = n * sizeof(float);
    return RC_OK;
}

/* Compare one output with its expected tensor; print a line; return true if within atol. */
static bool compare_output(const char *name, const Tensor *got, const Tensor *want, double atol) {
    char gs[128], ws[128];
    format_shape(gs, sizeof gs, got->rank, got->dims);
    format_shape(ws, sizeof ws, want->rank, want->dims);
    bool same_shape = got->rank == want->rank;
    for (int d = 0; same_shape && d < got->rank; d++) same_shape = got->dims[d] == want->dims[d];
    if (!same_shape || got->dtype != want->dtype) {
        printf("FAIL\t%s\tshape/dtype: got %s %s, expected %s %s\n", name, gs, dtype_name(got->dtype), ws, dtype_name(want->dtype));
        return false;
    }
    if (got->dtype != DT_F32) { /* integers, bool, float16: equal element by element or not at all (no tolerance) */
        size_t n = (size_t)num_elements(got->rank, got->dims), size = dtype_size(got->dtype), differ = 0, first = 0;
        for (size_t i = 0; i < n; i++)
            if (memcmp((const char *)got->data + i * size, (const char *)want->data + i * size, size) != 0 && differ++ == 0) first = i;
        printf("%s\t%s\t%s\texact\tdiffering=%zu", differ ? "FAIL" : "PASS", name, dtype_name(got->dtype), differ);
        if (differ) printf("\tfirst_index=%zu", first);
        printf("\n");
        return differ == 0;
    }
    const float *g = got->data, *w = want->data;
    size_t n = (size_t)num_elements(got->rank, got->dims);
    double max_abs = 0.0;
    size_t worst = 0, nonfinite = 0, top1_same = 0, rows = 0;
    for (size_t i = 0; i < n; i++) {
        double diff = (double)g[i] - (double)w[i];
        if (diff < 0) diff = -diff;
        if (!(g[i] - g[i] == 0.0f)) nonfinite++;
        if (diff > max_abs || diff != diff) {
            max_abs = diff != diff ? HUGE_VAL : diff;
            worst = i;
        }
    }
    if (got->rank == 2 && got->dims[1] > 0) { /* top-1 agreement per row */
        size_t cols = (size_t)got->dims[1];
        rows = (size_t)got->dims[0];
        for (size_t r = 0; r < rows; r++) {
            size_t ag = 0, aw = 0;
            for (size_t c = 1; c < cols; c++) {
                if (g[r * cols + c] > g[r * cols + ag]) ag = c;
                if (w[r * cols + c] > w[r * cols + aw]) aw = c;
            }
            top1_same += ag == aw;
        }
    }
    bool ok = max_abs <= atol && nonfinite == 0;
    printf("%s\t%s\tmax_abs_diff=%.9g\tatol=%.9g\tworst_index=%zu", ok ? "PASS" : "FAIL", name, max_abs, atol, worst);
    if (rows) printf("\ttop1_agreement=%zu/%zu", top1_same, rows);
    if (nonfinite) printf("\tnonfinite=%zu", nonfinite);
    printf("\n");
    return ok;
}

/* Copy rows [start, start+n) of `t` (first dimension) into a new aligned tensor. */
static int slice_rows(const Tensor *t, int64_t start, int64_t n, Tensor *out) {
    *out = *t;
    out->dims[0] = n;
    size_t row = t->dims[0] ? t->nbytes / (size_t)t->dims[0] : 0;
    out->nbytes = row * (size_t)n;
    out->data = host_alloc(out->nbytes);
    if (!out->data) return fail(RC_INPUT, "out of memory");
    memcpy(out->data, (const char *)t->data + row * (size_t)start, out->nbytes);
    return RC_OK;
}

/* Per-call milliseconds of the timed runs, kept for percentiles (grown as needed). */
typedef struct {
    double *ms;
    size_t n, cap;
} Latencies;

static bool latencies_add(Latencies *l, double ms) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 1024;
        double *p = realloc(l->ms, cap * sizeof *p);
        if (!p) return false;
        l->ms = p;
        l->cap = cap;
    }
    l->ms[l->n++] = ms;
    return true;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* The q-quantile (0..1) of sorted values, interpolated linearly between the two nearest
 * ranks: NumPy's default np.percentile method, so both sides report the same figure. */
static double quantile_sorted(const double *v, size_t n, double q) {
    if (n == 0) return 0.0;
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)pos, hi = lo + 1 < n ? lo + 1 : n - 1;
    return v[lo] + (v[hi] - v[lo]) * (pos - (double)lo);
}

/* Run the inputs whole or in chunks of --batch-size along the first dimension,
 * every chunk --warmup times untimed, then --repeat (--runs) times timed, all in
 * this process; outputs (of the last run) are concatenated in order. run_ms is
 * the mean time of one timed call, min_ms the fastest; every timed call goes into lat. */
static int run_batches(const Backend *be, const Args *a, const ModelInfo *mi, Tensor *feeds, Tensor *outs, double *run_ms,
                       double *min_ms, int *n_batches, Latencies *lat) {
    char err[ERR_LEN] = {0};
    bool chunked = a->batch_size > 0;
    int64_t n = 0;
    for (int i = 0; chunked && i < mi->n_inputs; i++) {
        if (feeds[i].rank < 1) chunked = false;
        else if (i == 0) n = feeds[i].dims[0];
        else if (feeds[i].dims[0] != n)
            return fail(RC_SHAPE, "--batch-size needs every input to have the same first dimension (%lld vs %lld)", (long long)n,
                        (long long)feeds[i].dims[0]);
    }
    if (chunked && a->batch_size >= n) chunked = false;
    int64_t step = chunked ? a->batch_size : (n ? n : 1), total = chunked ? n : step;
    double sum = 0;
    int runs = 0;
    for (int64_t start = 0; start < total; start += step) {
        int64_t len = total - start < step ? total - start : step;
        Tensor part[MAX_TENSORS], got[MAX_TENSORS];
        memset(part, 0, sizeof part);
        memset(got, 0, sizeof got);
        int rc = RC_OK;
        for (int i = 0; i < mi->n_inputs && !rc; i++) {
            if (chunked) rc = slice_rows(&feeds[i], start, len, &part[i]);
            else part[i] = feeds[i];
        }
        for (int r = 0; r < a->warmup + a->repeat && !rc; r++) {
            for (int i = 0; i < mi->n_outputs; i++) {
                free(got[i].data);
                got[i].data = NULL;
            }
            double t1 = now_ms();
            rc = be->run(part, got, err, sizeof err);
            double dt = now_ms() - t1;
            if (rc) rc = fail(rc, "%s", err);
            if (r < a->warmup) continue; /* untimed */
            sum += dt;
            if (runs == 0 || dt < *min_ms) *min_ms = dt;
            runs++;
            if (a->timed && !rc && !latencies_add(lat, dt)) rc = fail(RC_RUN, "out of memory for the latencies");
        }
        for (int i = 0; i < mi->n_outputs && !rc; i++) {
            if (!chunked) {
                outs[i] = got[i];
                got[i].data = NULL;
                continue;
            }
            if (got[i].rank < 1 || got[i].dims[0] != len) {
                rc = fail(RC_RUN, "output '%s' does not follow the batch (first dimension %lld for a batch of %lld); run without --batch-size",
                          mi->outputs[i].name, got[i].rank ? (long long)got[i].dims[0] : 0LL, (long long)len);
                break;
            }
            size_t row = got[i].nbytes / (size_t)len;
            if (start == 0) {
                outs[i] = got[i];
                outs[i].dims[0] = n;
                outs[i].nbytes = row * (size_t)n;
                outs[i].data = host_alloc(outs[i].nbytes);
                if (!outs[i].data) rc = fail(RC_RUN, "out of memory for output '%s'", mi->outputs[i].name);
            } else if (row * (size_t)outs[i].dims[0] != outs[i].nbytes || got[i].dtype != outs[i].dtype) {
                rc = fail(RC_RUN, "output '%s' changed its per-sample shape between batches", mi->outputs[i].name);
            }
            if (!rc) memcpy((char *)outs[i].data + row * (size_t)start, got[i].data, got[i].nbytes);
        }
        for (int i = 0; i < MAX_TENSORS; i++) {
            if (chunked) free(part[i].data);
            free(got[i].data);
        }
        (*n_batches)++;
        if (rc) return rc;
    }
    *run_ms = runs ? sum / runs : 0;
    return RC_OK;
}

/* One run (or check) of the loaded model as `a` says: inputs read, batches run, outputs written, the
 * timing and output lines printed. Used once by run/check and once per request by serve. */
static int run_request(const Backend *be, const Args *a, const ModelInfo *mi, double open_ms) {
    char err[ERR_LEN] = {0};
    Tensor feeds[MAX_TENSORS], outs[MAX_TENSORS];
    memset(feeds, 0, sizeof feeds);
    memset(outs, 0, sizeof outs);
    int rc = prepare_inputs(a, mi, feeds);
    double run_ms = 0, min_ms = 0;
    int n_batches = 0;
    Latencies lat = {NULL, 0, 0};
    set_crash_context("while running the model %s", a->model);
    if (!rc) rc = run_batches(be, a, mi, feeds, outs, &run_ms, &min_ms, &n_batches, &lat);
    if (!rc) {
        printf("timing\topen_ms=%.3f\trun_ms=%.3f\tmin_run_ms=%.3f\tbatches=%d\truns=%d\twarmup=%d", open_ms, run_ms, min_ms,
               n_batches, a->repeat, a->warmup);
        double *sorted = a->timed && lat.n ? malloc(lat.n * sizeof *sorted) : NULL;
        if (sorted) { /* p50/p99 of the timed calls on the timing line; every call, in order, on the next */
            memcpy(sorted, lat.ms, lat.n * sizeof *sorted);
            qsort(sorted, lat.n, sizeof *sorted, cmp_double);
            printf("\tcalls=%zu\tp50_ms=%.6f\tp90_ms=%.6f\tp99_ms=%.6f", lat.n, quantile_sorted(sorted, lat.n, 0.50),
                   quantile_sorted(sorted, lat.n, 0.90), quantile_sorted(sorted, lat.n, 0.99));
            for (size_t i = 0; i < lat.n; i++) printf(i ? "\t%.6f" : "\nlatencies\t%.6f", lat.ms[i]);
            free(sorted);
        }
        printf("\n");
    }
    free(lat.ms);
    bool all_ok = true;
    for (int i = 0; !rc && i < mi->n_outputs; i++) {
        const TensorInfo *ti = &mi->outputs[i];
        rc = finish_output(ti, &outs[i], a->raw);
        if (rc) break;
        char dims[128];
        format_dims(dims, sizeof dims, outs[i].rank, outs[i].dims);
        if (a->output_dir) {
            char path[4096];
            output_path(path, sizeof path, a->output_dir, ti->name);
            rc = npy_write(path, &outs[i], err, sizeof err);
            if (rc) {
                rc = fail(rc, "output '%s': %s", ti->name, err);
                break;
            }
            printf("output\t%s\t%s\t%s\t%s\n", ti->name, path, dtype_name(outs[i].dtype), dims);
        }
    }
    if (!rc && strcmp(a->mode, "check") == 0) {
        for (int j = 0; !rc && j < a->n_expects; j++) {
            int idx = -1;
            for (int i = 0; i < mi->n_outputs; i++)
                if (strcmp(mi->outputs[i].name, a->expects[j].name) == 0) idx = i;
            if (idx < 0) {
                rc = fail(RC_SHAPE, "--expect %s: the model has no output named '%s'", a->expects[j].name, a->expects[j].name);
                break;
            }
            Tensor want;
            rc = npy_read(a->expects[j].path, &want, err, sizeof err);
            if (rc) {
                rc = fail(rc, "expected output '%s': %s", a->expects[j].name, err);
                break;
            }
            all_ok &= compare_output(a->expects[j].name, &outs[idx], &want, a->expects[j].has_atol ? a->expects[j].atol : a->atol);
            free(want.data);
        }
        if (!rc) {
            printf("%s\n", all_ok ? "check: PASS" : "check: FAIL");
            if (!all_ok) rc = fail(RC_MISMATCH, "outputs of %s differ from the expected ones beyond the tolerance", a->model);
        }
    }
    for (int i = 0; i < MAX_TENSORS; i++) {
        free(feeds[i].data);
        free(outs[i].data);
    }
    return rc;
}

/* Free what parse_args allocated (the NAME of every NAME=FILE). */
static void free_args(Args *a) {
    for (int i = 0; i < a->n_inputs; i++) free((char *)a->inputs[i].name);
    for (int i = 0; i < a->n_expects; i++) free((char *)a->expects[i].name);
}

/* serve: the model stays loaded while requests come on stdin, one a line (run's options, tab-separated);
 * each is answered by run's output lines and `done<TAB>STATUS`. A caller running many batches pays the
 * model load (ONNX Runtime's graph optimisation: seconds for a real network) once, not per batch. */
static int serve(const Backend *be, const Args *a, const ModelInfo *mi, double open_ms) {
    printf("ready\n");
    fflush(stdout);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, stdin)) > 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0) break;
        char *argv[6 + 4 * MAX_TENSORS + 32];
        int argc = 0;
        argv[argc++] = (char *)g_prog;
        argv[argc++] = "run";
        argv[argc++] = "--lib";
        argv[argc++] = (char *)a->lib;
        argv[argc++] = "--model";
        argv[argc++] = (char *)a->model;
        int rc = RC_OK;
        for (char *tok = line, *tab; tok && !rc; tok = tab ? tab + 1 : NULL) {
            tab = strchr(tok, '\t');
            if (tab) *tab = '\0';
            if (argc >= (int)(sizeof argv / sizeof argv[0])) rc = fail(RC_USAGE, "too many options in one request");
            else argv[argc++] = tok;
        }
        Args r;
        if (!rc) rc = parse_args(argc, argv, be, &r);
        if (rc == -1) rc = RC_USAGE;
        if (!rc) {
            set_crash_context("while running the model %s", a->model);
            rc = run_request(be, &r, mi, open_ms);
            free_args(&r);
        }
        fflush(stderr);
        printf("done\t%d\n", rc);
        fflush(stdout);
    }
    free(line);
    return RC_OK;
}

static int runner_main(int argc, char **argv, const Backend *be) {
    const char *slash = strrchr(argv[0], '/');
    g_prog = slash ? slash + 1 : argv[0];
    if (!host_is_little_endian()) return fail(RC_USAGE, "big-endian hosts are not supported");
    Args a;
    int rc = parse_args(argc, argv, be, &a);
    if (rc == -1) return RC_OK;
    if (rc) return rc;

    static ModelInfo mi;
    char err[ERR_LEN] = {0};
    FILE *mf = fopen(a.model, "rb");
    if (!mf) return fail(RC_MODEL, "cannot open the model %s: %s", a.model, strerror(errno));
    fclose(mf);
    install_crash_handlers();
    set_crash_context("while loading the model %s", a.model);
    double t0 = now_ms();
    rc = be->open(a.lib, a.model, a.threads, &mi, err, sizeof err);
    double open_ms = now_ms() - t0;
    if (rc) {
        be->close();
        return fail(rc, "%s", err);
    }
    if (strcmp(a.mode, "info") == 0) {
        print_info(&mi, be);
        be->close();
        return RC_OK;
    }
    if (strcmp(a.mode, "serve") == 0) {
        print_info(&mi, be);
        rc = serve(be, &a, &mi, open_ms);
        be->close();
        return rc;
    }
    rc = run_request(be, &a, &mi, open_ms);
    be->close();
    fflush(stdout);
    return rc;
}

#endif /* EDGEFM_RUNNER_COMMON_H */
