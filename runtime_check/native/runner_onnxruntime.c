/*
 * runner_onnxruntime.c - run an .onnx model with ONNX Runtime's C API, no Python.
 *
 *     cc -O2 -o runner runner_onnxruntime.c -ldl
 *     ./runner run --lib /path/to/libonnxruntime.so.1.32.0 --model model.onnx \
 *         --input images=images.npy --output-dir out/
 *
 * The onnxruntime wheel ships the library (onnxruntime/capi/libonnxruntime.so.<version>,
 * SONAME libonnxruntime.so.1) but no headers. Its whole C API is one table of
 * function pointers reached through the exported OrtGetApiBase(); the table only
 * ever grows at its end, so the slots used here (all from the first API version)
 * keep their positions in every release. The declarations below follow
 * include/onnxruntime/core/session/onnxruntime_c_api.h, declaring only what is used.
 *
 * Tensors of float32, float16, int8, uint8, int16, int32, int64 and bool pass through byte
 * for byte (ONNX has no per-tensor scale on graph inputs: nothing is quantized here).
 * See runner_common.h for modes, file format and exit codes.
 */
#include "runner_common.h"

/* ---- ONNX Runtime C API: the subset used ----------------------------------------------- */

/* Asked of GetApi(); any ONNX Runtime >= 1.16 serves it. All slots used exist since v1. */
#define EDGEFM_ORT_API_VERSION 16

typedef struct OrtStatus OrtStatus; /* NULL = success */
typedef struct OrtEnv OrtEnv;
typedef struct OrtSession OrtSession;
typedef struct OrtSessionOptions OrtSessionOptions;
typedef struct OrtMemoryInfo OrtMemoryInfo;
typedef struct OrtValue OrtValue;
typedef struct OrtTypeInfo OrtTypeInfo;
typedef struct OrtTensorTypeAndShapeInfo OrtTensorTypeAndShapeInfo;
typedef struct OrtAllocator OrtAllocator;

enum { ORT_LOGGING_LEVEL_ERROR = 3 };                /* OrtLoggingLevel */
enum { OrtArenaAllocator = 1 };                      /* OrtAllocatorType */
enum { OrtMemTypeDefault = 0 };                      /* OrtMemType */
/* ONNXTensorElementDataType (onnxruntime_c_api.h), whose values are onnx.proto's
 * TensorProto.DataType: FLOAT = 1, UINT8 = 2, INT8 = 3, INT16 = 5, INT32 = 6, INT64 = 7,
 * BOOL = 9, FLOAT16 = 10 (onnx 1.23's onnx/onnx.proto; the values never change). */
enum {
    ONNX_FLOAT = 1,
    ONNX_UINT8 = 2,
    ONNX_INT8 = 3,
    ONNX_INT16 = 5,
    ONNX_INT32 = 6,
    ONNX_INT64 = 7,
    ONNX_BOOL = 9,
    ONNX_FLOAT16 = 10,
};
enum { ONNX_TYPE_TENSOR = 1 }; /* ONNXType */

typedef void (*OrtUnused)(void);

/* struct OrtApi, slots 0-100, in header order. Unused slots keep their place as OrtUnused. */
typedef struct {
    OrtUnused CreateStatus;                                                    /* 0 */
    OrtUnused GetErrorCode;                                                    /* 1 */
    const char *(*GetErrorMessage)(const OrtStatus *);                         /* 2 */
    OrtStatus *(*CreateEnv)(int log_level, const char *logid, OrtEnv **);      /* 3 */
    OrtUnused CreateEnvWithCustomLogger, EnableTelemetryEvents, DisableTelemetryEvents; /* 4-6 */
    OrtStatus *(*CreateSession)(const OrtEnv *, const char *path, const OrtSessionOptions *, OrtSession **); /* 7 */
    OrtUnused CreateSessionFromArray;                                          /* 8 */
    OrtStatus *(*Run)(OrtSession *, const void *run_options, const char *const *input_names,
                      const OrtValue *const *inputs, size_t n_inputs, const char *const *output_names,
                      size_t n_outputs, OrtValue **outputs);                   /* 9 */
    OrtStatus *(*CreateSessionOptions)(OrtSessionOptions **);                  /* 10 */
    OrtUnused slots11to21[11];                                                 /* 11-21 */
    OrtStatus *(*SetSessionLogSeverityLevel)(OrtSessionOptions *, int);        /* 22 */
    OrtUnused SetSessionGraphOptimizationLevel;                                /* 23 */
    OrtStatus *(*SetIntraOpNumThreads)(OrtSessionOptions *, int);              /* 24 */
    OrtUnused slots25to29[5];                                                  /* 25-29 */
    OrtStatus *(*SessionGetInputCount)(const OrtSession *, size_t *);          /* 30 */
    OrtStatus *(*SessionGetOutputCount)(const OrtSession *, size_t *);         /* 31 */
    OrtUnused SessionGetOverridableInitializerCount;                           /* 32 */
    OrtStatus *(*SessionGetInputTypeInfo)(const OrtSession *, size_t, OrtTypeInfo **);  /* 33 */
    OrtStatus *(*SessionGetOutputTypeInfo)(const OrtSession *, size_t, OrtTypeInfo **); /* 34 */
    OrtUnused SessionGetOverridableInitializerTypeInfo;                        /* 35 */
    OrtStatus *(*SessionGetInputName)(const OrtSession *, size_t, OrtAllocator *, char **);  /* 36 */
    OrtStatus *(*SessionGetOutputName)(const OrtSession *, size_t, OrtAllocator *, char **); /* 37 */
    OrtUnused slots38to48[11];                                                 /* 38-48 */
    OrtStatus *(*CreateTensorWithDataAsOrtValue)(const OrtMemoryInfo *, void *data, size_t nbytes,
                                                 const int64_t *shape, size_t rank, int type,
                                                 OrtValue **);                 /* 49 */
    OrtUnused IsTensor;                                                        /* 50 */
    OrtStatus *(*GetTensorMutableData)(OrtValue *, void **);                   /* 51 */
    OrtUnused slots52to54[3];                                                  /* 52-54 */
    OrtStatus *(*CastTypeInfoToTensorInfo)(const OrtTypeInfo *, const OrtTensorTypeAndShapeInfo **); /* 55 */
    OrtStatus *(*GetOnnxTypeFromTypeInfo)(const OrtTypeInfo *, int *);        /* 56 */
    OrtUnused slots57to59[3];                                                  /* 57-59 */
    OrtStatus *(*GetTensorElementType)(const OrtTensorTypeAndShapeInfo *, int *);    /* 60 */
    OrtStatus *(*GetDimensionsCount)(const OrtTensorTypeAndShapeInfo *, size_t *);   /* 61 */
    OrtStatus *(*GetDimensions)(const OrtTensorTypeAndShapeInfo *, int64_t *, size_t); /* 62 */
    OrtUnused GetSymbolicDimensions, GetTensorShapeElementCount;               /* 63-64 */
    OrtStatus *(*GetTensorTypeAndShape)(const OrtValue *, OrtTensorTypeAndShapeInfo **); /* 65 */
    OrtUnused GetTypeInfo, GetValueType, CreateMemoryInfo;                     /* 66-68 */
    OrtStatus *(*CreateCpuMemoryInfo)(int allocator_type, int mem_type, OrtMemoryInfo **); /* 69 */
    OrtUnused slots70to75[6];                                                  /* 70-75 */
    OrtStatus *(*AllocatorFree)(OrtAllocator *, void *);                       /* 76 */
    OrtUnused AllocatorGetInfo;                                                /* 77 */
    OrtStatus *(*GetAllocatorWithDefaultOptions)(OrtAllocator **);             /* 78 */
    OrtUnused slots79to91[13];                                                 /* 79-91 */
    void (*ReleaseEnv)(OrtEnv *);                                              /* 92 */
    void (*ReleaseStatus)(OrtStatus *);                                        /* 93 */
    void (*ReleaseMemoryInfo)(OrtMemoryInfo *);                                /* 94 */
    void (*ReleaseSession)(OrtSession *);                                      /* 95 */
    void (*ReleaseValue)(OrtValue *);                                          /* 96 */
    OrtUnused ReleaseRunOptions;                                               /* 97 */
    void (*ReleaseTypeInfo)(OrtTypeInfo *);                                    /* 98 */
    void (*ReleaseTensorTypeAndShapeInfo)(OrtTensorTypeAndShapeInfo *);        /* 99 */
    void (*ReleaseSessionOptions)(OrtSessionOptions *);                        /* 100 */
} OrtApi;

#define ORT_SLOT(field) (offsetof(OrtApi, field) / sizeof(void *))
_Static_assert(ORT_SLOT(GetErrorMessage) == 2, "OrtApi slot");
_Static_assert(ORT_SLOT(Run) == 9, "OrtApi slot");
_Static_assert(ORT_SLOT(CreateSessionOptions) == 10, "OrtApi slot");
_Static_assert(ORT_SLOT(SetSessionLogSeverityLevel) == 22, "OrtApi slot");
_Static_assert(ORT_SLOT(SessionGetInputCount) == 30, "OrtApi slot");
_Static_assert(ORT_SLOT(SessionGetOutputName) == 37, "OrtApi slot");
_Static_assert(ORT_SLOT(CreateTensorWithDataAsOrtValue) == 49, "OrtApi slot");
_Static_assert(ORT_SLOT(CastTypeInfoToTensorInfo) == 55, "OrtApi slot");
_Static_assert(ORT_SLOT(GetTensorTypeAndShape) == 65, "OrtApi slot");
_Static_assert(ORT_SLOT(CreateCpuMemoryInfo) == 69, "OrtApi slot");
_Static_assert(ORT_SLOT(GetAllocatorWithDefaultOptions) == 78, "OrtApi slot");
_Static_assert(ORT_SLOT(ReleaseEnv) == 92, "OrtApi slot");
_Static_assert(ORT_SLOT(ReleaseSessionOptions) == 100, "OrtApi slot");

typedef struct {
    const OrtApi *(*GetApi)(uint32_t version);
    const char *(*GetVersionString)(void);
} OrtApiBase;

/* ---- state ---------------------------------------------------------------------------- */

static const OrtApi *A;
static void *g_lib;
static OrtEnv *g_env;
static OrtSessionOptions *g_opts;
static OrtSession *g_session;
static OrtMemoryInfo *g_meminfo;
static ModelInfo *g_info;
static const char *g_in_names[MAX_TENSORS], *g_out_names[MAX_TENSORS];

/* Turn an OrtStatus into an error message (and release it); RC_OK for success. */
static int ort_err(OrtStatus *st, int rc, char *err, size_t errlen, const char *what) {
    if (!st) return RC_OK;
    set_err(err, errlen, rc, "%s: %s", what, A->GetErrorMessage(st));
    A->ReleaseStatus(st);
    return rc;
}

static DType from_onnx(int t) {
    switch (t) {
        case ONNX_FLOAT: return DT_F32;
        case ONNX_INT8: return DT_I8;
        case ONNX_UINT8: return DT_U8;
        case ONNX_INT32: return DT_I32;
        case ONNX_INT64: return DT_I64;
        case ONNX_INT16: return DT_I16;
        case ONNX_BOOL: return DT_BOOL;
        case ONNX_FLOAT16: return DT_F16;
        default: return DT_INVALID;
    }
}

static int to_onnx(DType t) {
    switch (t) {
        case DT_F32: return ONNX_FLOAT;
        case DT_I8: return ONNX_INT8;
        case DT_U8: return ONNX_UINT8;
        case DT_I32: return ONNX_INT32;
        case DT_I64: return ONNX_INT64;
        case DT_I16: return ONNX_INT16;
        case DT_BOOL: return ONNX_BOOL;
        case DT_F16: return ONNX_FLOAT16;
        default: return 0;
    }
}

/* Fill dtype and shape of `ti` from a tensor's type-and-shape info. */
static int read_shape(const OrtTensorTypeAndShapeInfo *ts, TensorInfo *ti, char *err, size_t errlen) {
    int et = 0;
    size_t rank = 0;
    int rc = ort_err(A->GetTensorElementType(ts, &et), RC_MODEL, err, errlen, "GetTensorElementType");
    if (!rc) rc = ort_err(A->GetDimensionsCount(ts, &rank), RC_MODEL, err, errlen, "GetDimensionsCount");
    if (rc) return rc;
    if (rank > MAX_RANK) return set_err(err, errlen, RC_MODEL, "tensor '%s' has rank %zu; at most %d is handled", ti->name, rank, MAX_RANK);
    ti->rank = (int)rank;
    ti->dtype = from_onnx(et);
    if (ti->dtype == DT_INVALID)
        return set_err(err, errlen, RC_MODEL, "tensor '%s' has ONNX element type %d, which this runner does not handle", ti->name, et);
    return ort_err(A->GetDimensions(ts, ti->dims, rank), RC_MODEL, err, errlen, "GetDimensions");
}

static int describe(int output, size_t i, TensorInfo *ti, char *err, size_t errlen) {
    OrtAllocator *alloc = NULL;
    char *name = NULL;
    OrtTypeInfo *type = NULL;
    const OrtTensorTypeAndShapeInfo *ts = NULL;
    int onnx_type = 0;
    memset(ti, 0, sizeof *ti);
    int rc = ort_err(A->GetAllocatorWithDefaultOptions(&alloc), RC_MODEL, err, errlen, "GetAllocatorWithDefaultOptions");
    if (!rc) rc = ort_err(output ? A->SessionGetOutputName(g_session, i, alloc, &name) : A->SessionGetInputName(g_session, i, alloc, &name),
                          RC_MODEL, err, errlen, "SessionGetName");
    if (rc) return rc;
    snprintf(ti->name, sizeof ti->name, "%s", name);
    ort_err(A->AllocatorFree(alloc, name), RC_MODEL, err, errlen, "AllocatorFree");
    rc = ort_err(output ? A->SessionGetOutputTypeInfo(g_session, i, &type) : A->SessionGetInputTypeInfo(g_session, i, &type),
                 RC_MODEL, err, errlen, "SessionGetTypeInfo");
    if (!rc) rc = ort_err(A->GetOnnxTypeFromTypeInfo(type, &onnx_type), RC_MODEL, err, errlen, "GetOnnxTypeFromTypeInfo");
    if (!rc && onnx_type != ONNX_TYPE_TENSOR)
        rc = set_err(err, errlen, RC_MODEL, "'%s' is not a tensor (ONNX type %d); this runner handles tensors only", ti->name, onnx_type);
    if (!rc) rc = ort_err(A->CastTypeInfoToTensorInfo(type, &ts), RC_MODEL, err, errlen, "CastTypeInfoToTensorInfo");
    if (!rc) rc = read_shape(ts, ti, err, errlen);
    if (type) A->ReleaseTypeInfo(type);
    return rc;
}

static int ort_open(const char *lib, const char *model, int threads, ModelInfo *info, char *err, size_t errlen) {
    g_info = info;
    /* By absolute path: the file is libonnxruntime.so.1.32.0 while its SONAME is
     * libonnxruntime.so.1, so no library search could find it anyway. */
    g_lib = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!g_lib)
        return set_err(err, errlen, RC_LIBRARY, "cannot load the ONNX Runtime library %s: %s (pip install onnxruntime; the file is onnxruntime/capi/libonnxruntime.so.<version>)",
                       lib, dlerror());
    const OrtApiBase *(*get_base)(void);
    void *sym = dlsym(g_lib, "OrtGetApiBase");
    if (!sym) return set_err(err, errlen, RC_LIBRARY, "%s has no symbol OrtGetApiBase: it is not ONNX Runtime", lib);
    memcpy(&get_base, &sym, sizeof sym);
    const OrtApiBase *base = get_base();
    const char *version = base && base->GetVersionString ? base->GetVersionString() : "unknown";
    snprintf(info->runtime_version, sizeof info->runtime_version, "%s", version);
    A = base ? base->GetApi(EDGEFM_ORT_API_VERSION) : NULL;
    if (!A)
        return set_err(err, errlen, RC_LIBRARY, "ONNX Runtime %s in %s does not offer C API version %d; install onnxruntime >= 1.%d",
                       version, lib, EDGEFM_ORT_API_VERSION, EDGEFM_ORT_API_VERSION);
    int rc = ort_err(A->CreateEnv(ORT_LOGGING_LEVEL_ERROR, "edgefm", &g_env), RC_LIBRARY, err, errlen, "CreateEnv");
    if (!rc) rc = ort_err(A->CreateSessionOptions(&g_opts), RC_LIBRARY, err, errlen, "CreateSessionOptions");
    if (!rc) rc = ort_err(A->SetSessionLogSeverityLevel(g_opts, ORT_LOGGING_LEVEL_ERROR), RC_LIBRARY, err, errlen, "SetSessionLogSeverityLevel");
    if (!rc && threads > 0) rc = ort_err(A->SetIntraOpNumThreads(g_opts, threads), RC_USAGE, err, errlen, "SetIntraOpNumThreads");
    if (!rc) rc = ort_err(A->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &g_meminfo), RC_LIBRARY, err, errlen, "CreateCpuMemoryInfo");
    if (rc) return rc;
    OrtStatus *st = A->CreateSession(g_env, model, g_opts, &g_session);
    if (st) {
        char what[1024];
        snprintf(what, sizeof what, "ONNX Runtime cannot load the model %s", model);
        return ort_err(st, RC_MODEL, err, errlen, what);
    }
    size_t n_in = 0, n_out = 0;
    rc = ort_err(A->SessionGetInputCount(g_session, &n_in), RC_MODEL, err, errlen, "SessionGetInputCount");
    if (!rc) rc = ort_err(A->SessionGetOutputCount(g_session, &n_out), RC_MODEL, err, errlen, "SessionGetOutputCount");
    if (rc) return rc;
    if (n_in == 0 || n_in > MAX_TENSORS || n_out == 0 || n_out > MAX_TENSORS)
        return set_err(err, errlen, RC_MODEL, "%s has %zu inputs and %zu outputs; this runner handles 1 to %d of each", model, n_in, n_out,
                       MAX_TENSORS);
    info->n_inputs = (int)n_in;
    info->n_outputs = (int)n_out;
    for (size_t i = 0; i < n_in && !rc; i++) {
        rc = describe(0, i, &info->inputs[i], err, errlen);
        g_in_names[i] = info->inputs[i].name;
    }
    for (size_t i = 0; i < n_out && !rc; i++) {
        rc = describe(1, i, &info->outputs[i], err, errlen);
        g_out_names[i] = info->outputs[i].name;
    }
    return rc;
}

static int ort_run(const Tensor *inputs, Tensor *outputs, char *err, size_t errlen) {
    int n_in = g_info->n_inputs, n_out = g_info->n_outputs, rc = RC_OK;
    OrtValue *in_vals[MAX_TENSORS] = {0}, *out_vals[MAX_TENSORS] = {0};
    for (int i = 0; i < n_in && !rc; i++)
        rc = ort_err(A->CreateTensorWithDataAsOrtValue(g_meminfo, inputs[i].data, inputs[i].nbytes, inputs[i].dims, (size_t)inputs[i].rank,
                                                       to_onnx(inputs[i].dtype), &in_vals[i]),
                     RC_SHAPE, err, errlen, "cannot wrap an input for ONNX Runtime");
    if (!rc)
        rc = ort_err(A->Run(g_session, NULL, g_in_names, (const OrtValue *const *)in_vals, (size_t)n_in, g_out_names, (size_t)n_out, out_vals),
                     RC_RUN, err, errlen, "ONNX Runtime failed to run the model");
    for (int i = 0; i < n_out && !rc; i++) {
        OrtTensorTypeAndShapeInfo *ts = NULL;
        TensorInfo ti;
        void *data = NULL;
        memset(&ti, 0, sizeof ti);
        snprintf(ti.name, sizeof ti.name, "%s", g_out_names[i]);
        rc = ort_err(A->GetTensorTypeAndShape(out_vals[i], &ts), RC_RUN, err, errlen, "GetTensorTypeAndShape");
        if (!rc) rc = read_shape(ts, &ti, err, errlen);
        if (ts) A->ReleaseTensorTypeAndShapeInfo(ts);
        if (!rc) rc = ort_err(A->GetTensorMutableData(out_vals[i], &data), RC_RUN, err, errlen, "GetTensorMutableData");
        if (rc) break;
        Tensor *o = &outputs[i];
        o->dtype = ti.dtype;
        o->rank = ti.rank;
        memcpy(o->dims, ti.dims, sizeof o->dims);
        o->nbytes = (size_t)num_elements(o->rank, o->dims) * dtype_size(o->dtype);
        o->data = host_alloc(o->nbytes);
        if (!o->data) rc = set_err(err, errlen, RC_RUN, "out of memory for output '%s'", ti.name);
        else memcpy(o->data, data, o->nbytes);
    }
    for (int i = 0; i < MAX_TENSORS; i++) {
        if (in_vals[i]) A->ReleaseValue(in_vals[i]);
        if (out_vals[i]) A->ReleaseValue(out_vals[i]);
    }
    return rc;
}

static void ort_close(void) {
    if (!A) return;
    if (g_session) A->ReleaseSession(g_session);
    if (g_meminfo) A->ReleaseMemoryInfo(g_meminfo);
    if (g_opts) A->ReleaseSessionOptions(g_opts);
    if (g_env) A->ReleaseEnv(g_env);
    g_session = NULL;
    g_meminfo = NULL;
    g_opts = NULL;
    g_env = NULL;
}

int main(int argc, char **argv) {
    static const Backend backend = {
        .runtime = "ONNX Runtime",
        .lib_name = "libonnxruntime.so",
        .install = "pip install onnxruntime; the file is onnxruntime/capi/libonnxruntime.so.<version> in its site-packages",
        .lib_env = "EDGEFM_ONNXRUNTIME_LIB",
        .open = ort_open,
        .run = ort_run,
        .close = ort_close,
    };
    return runner_main(argc, argv, &backend);
}
