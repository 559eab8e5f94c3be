/*
 * runner_litert.c - run a .tflite model with LiteRT's C API (libLiteRt.so), no Python.
 *
 *     cc -O2 -o runner runner_litert.c -ldl
 *     ./runner run --lib /path/to/libLiteRt.so --model model.tflite \
 *         --input images=images.npy --output-dir out/
 *
 * libLiteRt.so ships inside the ai-edge-litert wheel (ai_edge_litert/libLiteRt.so)
 * but no C headers do, so the few declarations used here are written out below,
 * from LiteRT's public headers (litert/c/litert_*.h) as of ai-edge-litert 2.3.0.
 * Flow: environment -> model from file -> compiled model (CPU) -> resize the
 * inputs to the batch -> tensor buffers over host memory -> run.
 *
 * Every tensor dtype NumPy and TFLite share is passed through as it is: float32, float16,
 * int8, uint8, int16, int32, int64, bool. Quantized (int8/uint8/int16) inputs also accept float32 files, quantized here with the
 * tensor's own scale and zero point; quantized outputs are dequantized to float32
 * unless --raw. See runner_common.h for modes, file format and exit codes.
 */
#include "runner_common.h"

/* ---- LiteRT C API: the subset used, declared from the upstream headers ---------------- */

typedef int LiteRtStatus; /* enum LiteRtStatus; 0 = kLiteRtStatusOk */
typedef size_t LiteRtParamIndex;
typedef struct LiteRtEnvironmentT *LiteRtEnvironment;
typedef struct LiteRtModelT *LiteRtModel;
typedef struct LiteRtSignatureT *LiteRtSignature;
typedef struct LiteRtTensorT *LiteRtTensor;
typedef struct LiteRtOptionsT *LiteRtOptions;
typedef struct LiteRtCompiledModelT *LiteRtCompiledModel;
typedef struct LiteRtTensorBufferT *LiteRtTensorBuffer;

enum { kLiteRtRankedTensorType = 0 };           /* LiteRtTensorTypeId */
enum { kLiteRtQuantizationPerTensor = 1 };      /* LiteRtQuantizationTypeId */
enum { kLiteRtHwAcceleratorCpu = 1 << 0 };      /* LiteRtHwAccelerators */
/* LiteRtElementType: litert/c/litert_model_types.h defines each kLiteRtElementTypeX as
 * kTfLiteX, whose values are TfLiteType's in tensorflow/lite/core/c/c_api_types.h:
 * kTfLiteFloat32 = 1, kTfLiteInt32 = 2, kTfLiteUInt8 = 3, kTfLiteInt64 = 4, kTfLiteBool = 6,
 * kTfLiteInt16 = 7, kTfLiteInt8 = 9, kTfLiteFloat16 = 10 (an ABI the C API keeps). */
enum {
    kLiteRtElementTypeFloat32 = 1,
    kLiteRtElementTypeInt32 = 2,
    kLiteRtElementTypeUInt8 = 3,
    kLiteRtElementTypeInt64 = 4,
    kLiteRtElementTypeBool = 6,
    kLiteRtElementTypeInt16 = 7,
    kLiteRtElementTypeInt8 = 9,
    kLiteRtElementTypeFloat16 = 10,
};

#define LITERT_TENSOR_MAX_RANK 8

/* litert_layout.h, the version libLiteRt 2.3.0 was built with: a 7-bit rank and a
 * has_strides bit, then fixed arrays. (An older header had `uint32_t rank` and a
 * strides pointer; with that layout LiteRT rejects buffers with "Input tensor
 * shape mismatch".) */
typedef struct {
    unsigned int rank : 7;
    bool has_strides : 1;
    int32_t dimensions[LITERT_TENSOR_MAX_RANK];
    uint32_t strides[LITERT_TENSOR_MAX_RANK];
} LiteRtLayout;

typedef struct {
    int element_type; /* LiteRtElementType */
    LiteRtLayout layout;
} LiteRtRankedTensorType;

/* The sizes LiteRT's own headers assert on 64-bit platforms. */
_Static_assert(sizeof(LiteRtLayout) == 68, "LiteRtLayout must be 68 bytes");
_Static_assert(sizeof(LiteRtRankedTensorType) == 72, "LiteRtRankedTensorType must be 72 bytes");
_Static_assert(offsetof(LiteRtRankedTensorType, layout) == 4, "layout must follow element_type");

typedef struct {
    float scale;
    int64_t zero_point;
} LiteRtQuantizationPerTensor;

typedef struct {
    LiteRtStatus (*CreateEnvironment)(int, const void *, LiteRtEnvironment *);
    void (*DestroyEnvironment)(LiteRtEnvironment);
    /* 2.3.0 takes the environment first; older headers show (filename, model*). */
    LiteRtStatus (*CreateModelFromFile)(LiteRtEnvironment, const char *, LiteRtModel *);
    void (*DestroyModel)(LiteRtModel);
    LiteRtStatus (*GetNumModelSignatures)(LiteRtModel, LiteRtParamIndex *);
    LiteRtStatus (*GetModelSignature)(LiteRtModel, LiteRtParamIndex, LiteRtSignature *);
    LiteRtStatus (*GetSignatureKey)(LiteRtSignature, const char **);
    LiteRtStatus (*GetNumSignatureInputs)(LiteRtSignature, LiteRtParamIndex *);
    LiteRtStatus (*GetNumSignatureOutputs)(LiteRtSignature, LiteRtParamIndex *);
    LiteRtStatus (*GetSignatureInputName)(LiteRtSignature, LiteRtParamIndex, const char **);
    LiteRtStatus (*GetSignatureOutputName)(LiteRtSignature, LiteRtParamIndex, const char **);
    LiteRtStatus (*GetSignatureInputTensorByIndex)(LiteRtSignature, LiteRtParamIndex, LiteRtTensor *);
    LiteRtStatus (*GetSignatureOutputTensorByIndex)(LiteRtSignature, LiteRtParamIndex, LiteRtTensor *);
    LiteRtStatus (*GetTensorTypeId)(LiteRtTensor, int *);
    LiteRtStatus (*GetRankedTensorType)(LiteRtTensor, LiteRtRankedTensorType *);
    LiteRtStatus (*GetQuantizationTypeId)(LiteRtTensor, int *);
    LiteRtStatus (*GetPerTensorQuantization)(LiteRtTensor, LiteRtQuantizationPerTensor *);
    LiteRtStatus (*CreateOptions)(LiteRtOptions *);
    LiteRtStatus (*SetOptionsHardwareAccelerators)(LiteRtOptions, int);
    void (*DestroyOptions)(LiteRtOptions);
    LiteRtStatus (*CreateCompiledModel)(LiteRtEnvironment, LiteRtModel, LiteRtOptions, LiteRtCompiledModel *);
    void (*DestroyCompiledModel)(LiteRtCompiledModel);
    LiteRtStatus (*ResizeInputTensor)(LiteRtCompiledModel, LiteRtParamIndex, LiteRtParamIndex, const int *, size_t);
    LiteRtStatus (*ResizeInputTensorNonStrict)(LiteRtCompiledModel, LiteRtParamIndex, LiteRtParamIndex, const int *, size_t);
    LiteRtStatus (*GetOutputTensorLayouts)(LiteRtCompiledModel, LiteRtParamIndex, size_t, LiteRtLayout *, bool);
    LiteRtStatus (*CreateTensorBufferFromHostMemory)(const LiteRtRankedTensorType *, void *, size_t, void (*)(void *),
                                                     LiteRtTensorBuffer *);
    void (*DestroyTensorBuffer)(LiteRtTensorBuffer);
    LiteRtStatus (*RunCompiledModel)(LiteRtCompiledModel, LiteRtParamIndex, size_t, LiteRtTensorBuffer *, size_t,
                                     LiteRtTensorBuffer *);
} LiteRtApi;

static const struct {
    const char *symbol;
    size_t offset;
} kSymbols[] = {
#define SYM(field, name) {name, offsetof(LiteRtApi, field)}
    SYM(CreateEnvironment, "LiteRtCreateEnvironment"),
    SYM(DestroyEnvironment, "LiteRtDestroyEnvironment"),
    SYM(CreateModelFromFile, "LiteRtCreateModelFromFile"),
    SYM(DestroyModel, "LiteRtDestroyModel"),
    SYM(GetNumModelSignatures, "LiteRtGetNumModelSignatures"),
    SYM(GetModelSignature, "LiteRtGetModelSignature"),
    SYM(GetSignatureKey, "LiteRtGetSignatureKey"),
    SYM(GetNumSignatureInputs, "LiteRtGetNumSignatureInputs"),
    SYM(GetNumSignatureOutputs, "LiteRtGetNumSignatureOutputs"),
    SYM(GetSignatureInputName, "LiteRtGetSignatureInputName"),
    SYM(GetSignatureOutputName, "LiteRtGetSignatureOutputName"),
    SYM(GetSignatureInputTensorByIndex, "LiteRtGetSignatureInputTensorByIndex"),
    SYM(GetSignatureOutputTensorByIndex, "LiteRtGetSignatureOutputTensorByIndex"),
    SYM(GetTensorTypeId, "LiteRtGetTensorTypeId"),
    SYM(GetRankedTensorType, "LiteRtGetRankedTensorType"),
    SYM(GetQuantizationTypeId, "LiteRtGetQuantizationTypeId"),
    SYM(GetPerTensorQuantization, "LiteRtGetPerTensorQuantization"),
    SYM(CreateOptions, "LiteRtCreateOptions"),
    SYM(SetOptionsHardwareAccelerators, "LiteRtSetOptionsHardwareAccelerators"),
    SYM(DestroyOptions, "LiteRtDestroyOptions"),
    SYM(CreateCompiledModel, "LiteRtCreateCompiledModel"),
    SYM(DestroyCompiledModel, "LiteRtDestroyCompiledModel"),
    SYM(ResizeInputTensor, "LiteRtCompiledModelResizeInputTensor"),
    SYM(ResizeInputTensorNonStrict, "LiteRtCompiledModelResizeInputTensorNonStrict"),
    SYM(GetOutputTensorLayouts, "LiteRtGetCompiledModelOutputTensorLayouts"),
    SYM(CreateTensorBufferFromHostMemory, "LiteRtCreateTensorBufferFromHostMemory"),
    SYM(DestroyTensorBuffer, "LiteRtDestroyTensorBuffer"),
    SYM(RunCompiledModel, "LiteRtRunCompiledModel"),
#undef SYM
};

static const char *status_name(LiteRtStatus s) {
    switch (s) {
        case 0: return "ok";
        case 1: return "invalid argument";
        case 2: return "memory allocation failure";
        case 3: return "runtime failure";
        case 4: return "missing input tensor";
        case 5: return "unsupported";
        case 6: return "not found";
        case 500: return "file I/O error";
        case 501: return "invalid flatbuffer";
        case 504: return "compilation error";
        case 1000: return "index out of bounds";
        default: return "error";
    }
}

/* ---- state ---------------------------------------------------------------------------- */

static LiteRtApi L;
static void *g_lib;
static LiteRtEnvironment g_env;
static LiteRtModel g_model;
static LiteRtOptions g_options;
static LiteRtCompiledModel g_compiled;
static LiteRtParamIndex g_sig;
static ModelInfo *g_info;
static int64_t g_batch_dims[MAX_TENSORS][MAX_RANK]; /* input shapes the model is currently sized for */
static bool g_sized;

static DType from_element_type(int t) {
    switch (t) {
        case kLiteRtElementTypeFloat32: return DT_F32;
        case kLiteRtElementTypeInt8: return DT_I8;
        case kLiteRtElementTypeUInt8: return DT_U8;
        case kLiteRtElementTypeInt32: return DT_I32;
        case kLiteRtElementTypeInt64: return DT_I64;
        case kLiteRtElementTypeFloat16: return DT_F16;
        case kLiteRtElementTypeInt16: return DT_I16;
        case kLiteRtElementTypeBool: return DT_BOOL;
        default: return DT_INVALID;
    }
}

static int to_element_type(DType t) {
    switch (t) {
        case DT_F32: return kLiteRtElementTypeFloat32;
        case DT_I8: return kLiteRtElementTypeInt8;
        case DT_U8: return kLiteRtElementTypeUInt8;
        case DT_I32: return kLiteRtElementTypeInt32;
        case DT_I64: return kLiteRtElementTypeInt64;
        case DT_F16: return kLiteRtElementTypeFloat16;
        case DT_I16: return kLiteRtElementTypeInt16;
        case DT_BOOL: return kLiteRtElementTypeBool;
        default: return 0;
    }
}

static int describe_tensor(LiteRtTensor t, const char *name, TensorInfo *ti, char *err, size_t errlen) {
    int type_id = -1, q_id = 0;
    LiteRtRankedTensorType rt;
    memset(ti, 0, sizeof *ti);
    snprintf(ti->name, sizeof ti->name, "%s", name ? name : "");
    if (L.GetTensorTypeId(t, &type_id) != 0 || type_id != kLiteRtRankedTensorType || L.GetRankedTensorType(t, &rt) != 0)
        return set_err(err, errlen, RC_MODEL, "tensor '%s' has no fixed rank; edgefm's runner needs ranked tensors", ti->name);
    ti->dtype = from_element_type(rt.element_type);
    if (ti->dtype == DT_INVALID)
        return set_err(err, errlen, RC_MODEL, "tensor '%s' has element type %d, which this runner does not handle", ti->name,
                       rt.element_type);
    ti->rank = (int)rt.layout.rank;
    for (int d = 0; d < ti->rank && d < MAX_RANK; d++) ti->dims[d] = rt.layout.dimensions[d];
    /* Only the dtypes quantize()/dequantize() handle; a scale on float, bool or int32/int64 I/O is
     * left alone (passed through as stored). */
    if (L.GetQuantizationTypeId(t, &q_id) == 0 && q_id == kLiteRtQuantizationPerTensor && quantizable(ti->dtype)) {
        LiteRtQuantizationPerTensor q;
        if (L.GetPerTensorQuantization(t, &q) == 0 && q.scale != 0.0f) {
            ti->quantized = true;
            ti->scale = q.scale;
            ti->zero_point = (int32_t)q.zero_point;
        }
    }
    return RC_OK;
}

static int litert_open(const char *lib, const char *model, int threads, ModelInfo *info, char *err, size_t errlen) {
    (void)threads; /* the CPU accelerator picks its own thread count */
    LiteRtStatus s;
    g_info = info;
    g_lib = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!g_lib)
        return set_err(err, errlen, RC_LIBRARY, "cannot load the LiteRT library %s: %s (pip install ai-edge-litert; the file is ai_edge_litert/libLiteRt.so)",
                       lib, dlerror());
    for (size_t i = 0; i < sizeof kSymbols / sizeof kSymbols[0]; i++) {
        void *fn = dlsym(g_lib, kSymbols[i].symbol);
        if (!fn)
            return set_err(err, errlen, RC_LIBRARY, "%s has no symbol %s: this runner needs the LiteRT C API of ai-edge-litert 2.3",
                           lib, kSymbols[i].symbol);
        memcpy((char *)&L + kSymbols[i].offset, &fn, sizeof fn);
    }
    if ((s = L.CreateEnvironment(0, NULL, &g_env)) != 0)
        return set_err(err, errlen, RC_LIBRARY, "LiteRtCreateEnvironment failed: %s (%d)", status_name(s), s);
    if ((s = L.CreateModelFromFile(g_env, model, &g_model)) != 0)
        return set_err(err, errlen, RC_MODEL, "LiteRT cannot load the model %s: %s (%d). Is it a complete .tflite file?", model,
                       status_name(s), s);
    LiteRtParamIndex n_sigs = 0;
    if (L.GetNumModelSignatures(g_model, &n_sigs) != 0 || n_sigs == 0)
        return set_err(err, errlen, RC_MODEL, "%s has no signature; export it with a serving signature", model);
    g_sig = 0;
    bool found = g_signature == NULL;
    for (LiteRtParamIndex i = 0; i < n_sigs && !found; i++) { /* --signature KEY, else the first */
        LiteRtSignature sig;
        const char *key = NULL;
        if (L.GetModelSignature(g_model, i, &sig) == 0 && L.GetSignatureKey(sig, &key) == 0 && key &&
            strcmp(key, g_signature) == 0) {
            g_sig = i;
            found = true;
        }
    }
    /* A file without SignatureDefs (TFLiteConverter.from_concrete_functions without a trackable object)
     * still has one signature here: LiteRT makes a placeholder over the subgraph's inputs and outputs,
     * named by tensor, as the Python binding's get_input_details() names them. */
    if (!found && n_sigs == 1) found = true;
    if (!found)
        return set_err(err, errlen, RC_MODEL, "%s has no signature '%s'", model, g_signature);
    LiteRtSignature sig;
    LiteRtParamIndex n_in = 0, n_out = 0;
    if (L.GetModelSignature(g_model, g_sig, &sig) != 0 || L.GetNumSignatureInputs(sig, &n_in) != 0 ||
        L.GetNumSignatureOutputs(sig, &n_out) != 0)
        return set_err(err, errlen, RC_MODEL, "cannot read the signature of %s", model);
    if (n_in == 0 || n_in > MAX_TENSORS || n_out == 0 || n_out > MAX_TENSORS)
        return set_err(err, errlen, RC_MODEL, "%s has %zu inputs and %zu outputs; this runner handles 1 to %d of each", model, n_in,
                       n_out, MAX_TENSORS);
    info->n_inputs = (int)n_in;
    info->n_outputs = (int)n_out;
    for (int k = 0; k < 2; k++) {
        LiteRtParamIndex n = k ? n_out : n_in;
        for (LiteRtParamIndex i = 0; i < n; i++) {
            const char *name = NULL;
            LiteRtTensor t;
            s = k ? L.GetSignatureOutputName(sig, i, &name) : L.GetSignatureInputName(sig, i, &name);
            if (s == 0) s = k ? L.GetSignatureOutputTensorByIndex(sig, i, &t) : L.GetSignatureInputTensorByIndex(sig, i, &t);
            if (s != 0) return set_err(err, errlen, RC_MODEL, "cannot read tensor %zu of %s: %s", i, model, status_name(s));
            int rc = describe_tensor(t, name, k ? &info->outputs[i] : &info->inputs[i], err, errlen);
            if (rc) return rc;
        }
    }
    if ((s = L.CreateOptions(&g_options)) != 0 || (s = L.SetOptionsHardwareAccelerators(g_options, kLiteRtHwAcceleratorCpu)) != 0)
        return set_err(err, errlen, RC_LIBRARY, "cannot set LiteRT options: %s (%d)", status_name(s), s);
    if ((s = L.CreateCompiledModel(g_env, g_model, g_options, &g_compiled)) != 0)
        return set_err(err, errlen, RC_MODEL, "LiteRT cannot compile %s for the CPU: %s (%d)", model, status_name(s), s);
    snprintf(info->runtime_version, sizeof info->runtime_version, "C API (libLiteRt.so)");
    return RC_OK;
}

/* Resize every input to the given shape, if it changed since the last run. */
static int resize_inputs(const Tensor *inputs, char *err, size_t errlen) {
    bool same = g_sized;
    for (int i = 0; same && i < g_info->n_inputs; i++)
        same = memcmp(g_batch_dims[i], inputs[i].dims, sizeof(int64_t) * (size_t)inputs[i].rank) == 0;
    if (same) return RC_OK;
    for (int i = 0; i < g_info->n_inputs; i++) {
        int dims[MAX_RANK];
        for (int d = 0; d < inputs[i].rank; d++) dims[d] = (int)inputs[i].dims[d];
        LiteRtStatus s = L.ResizeInputTensor(g_compiled, g_sig, (LiteRtParamIndex)i, dims, (size_t)inputs[i].rank);
        if (s != 0) s = L.ResizeInputTensorNonStrict(g_compiled, g_sig, (LiteRtParamIndex)i, dims, (size_t)inputs[i].rank);
        if (s != 0) {
            char shp[128];
            format_shape(shp, sizeof shp, inputs[i].rank, inputs[i].dims);
            return set_err(err, errlen, RC_SHAPE, "LiteRT cannot resize input '%s' to %s: %s (%d)", g_info->inputs[i].name, shp,
                           status_name(s), s);
        }
        memcpy(g_batch_dims[i], inputs[i].dims, sizeof(int64_t) * (size_t)inputs[i].rank);
    }
    g_sized = true;
    return RC_OK;
}

/* Every output buffer is filled with this byte before a run. LiteRT 2.3's CompiledModel never writes
 * an output that an operator made dynamic (kTfLiteDynamic) during preparation: the run returns ok and
 * the caller's buffer keeps what it held (zeros, once), and the next run fails with "allocation_type !=
 * kTfLiteCustom" (measured on x86 and on the emulated Arm board; upstream PR #8667). A float output
 * whose every byte is still 0xA5 (-2.9e-16 each) was not written: an error, never numbers. */
#define UNWRITTEN 0xA5
static bool g_unwritten;

static bool unwritten_output(const Tensor *o) {
    if ((o->dtype != DT_F32 && o->dtype != DT_F16) || o->nbytes < 4) return false; /* an integer may be 0xA5 */
    const unsigned char *b = (const unsigned char *)o->data;
    for (size_t k = 0; k < o->nbytes; k++)
        if (b[k] != UNWRITTEN) return false;
    return true;
}

static LiteRtRankedTensorType ranked_type(DType dtype, int rank, const int64_t *dims) {
    LiteRtRankedTensorType rt;
    memset(&rt, 0, sizeof rt);
    rt.element_type = to_element_type(dtype);
    rt.layout.rank = (unsigned)rank & 0x7fu; /* rank <= MAX_RANK (8) */
    rt.layout.has_strides = false;
    for (int d = 0; d < rank; d++) rt.layout.dimensions[d] = (int32_t)dims[d];
    return rt;
}

static int litert_run(const Tensor *inputs, Tensor *outputs, char *err, size_t errlen) {
    int rc = resize_inputs(inputs, err, errlen);
    if (rc) return rc;
    int n_in = g_info->n_inputs, n_out = g_info->n_outputs;
    LiteRtLayout layouts[MAX_TENSORS];
    memset(layouts, 0, sizeof layouts);
    LiteRtStatus s = L.GetOutputTensorLayouts(g_compiled, g_sig, (size_t)n_out, layouts, true);
    if (s != 0) return set_err(err, errlen, RC_RUN, "LiteRT cannot size the outputs: %s (%d)", status_name(s), s);
    LiteRtTensorBuffer in_bufs[MAX_TENSORS] = {0}, out_bufs[MAX_TENSORS] = {0};
    rc = RC_OK;
    for (int i = 0; i < n_in && !rc; i++) {
        LiteRtRankedTensorType rt = ranked_type(inputs[i].dtype, inputs[i].rank, inputs[i].dims);
        s = L.CreateTensorBufferFromHostMemory(&rt, inputs[i].data, inputs[i].nbytes, NULL, &in_bufs[i]);
        if (s != 0) rc = set_err(err, errlen, RC_RUN, "cannot wrap input '%s' in a LiteRT buffer: %s (%d)", g_info->inputs[i].name,
                                 status_name(s), s);
    }
    for (int i = 0; i < n_out && !rc; i++) {
        Tensor *o = &outputs[i];
        o->dtype = g_info->outputs[i].dtype;
        o->rank = (int)layouts[i].rank;
        for (int d = 0; d < o->rank; d++) o->dims[d] = layouts[i].dimensions[d];
        /* LiteRT 2.3's output layouts are not always re-derived after an input resize: a Keras CNN
         * (Conv2D -> Flatten -> Dense, shape_signature [-1, 5]) still reports [1, 5] for a batch of 4,
         * and the run then writes 4 rows into a 1-row buffer (heap corruption, measured). An output
         * whose signature has a dynamic first dimension follows the batch. */
        if (o->rank > 0 && g_info->outputs[i].rank > 0 && g_info->outputs[i].dims[0] < 0 && n_in > 0 && inputs[0].rank > 0)
            o->dims[0] = inputs[0].dims[0];
        o->nbytes = (size_t)num_elements(o->rank, o->dims) * dtype_size(o->dtype);
        o->data = host_alloc(o->nbytes);
        if (!o->data) {
            rc = set_err(err, errlen, RC_RUN, "out of memory for output '%s'", g_info->outputs[i].name);
            break;
        }
        memset(o->data, UNWRITTEN, o->nbytes); /* see unwritten_output() */
        LiteRtRankedTensorType rt = ranked_type(o->dtype, o->rank, o->dims);
        s = L.CreateTensorBufferFromHostMemory(&rt, o->data, o->nbytes, NULL, &out_bufs[i]);
        if (s != 0) rc = set_err(err, errlen, RC_RUN, "cannot wrap output '%s' in a LiteRT buffer: %s (%d)", g_info->outputs[i].name,
                                 status_name(s), s);
    }
    if (!rc && (s = L.RunCompiledModel(g_compiled, g_sig, (size_t)n_in, in_bufs, (size_t)n_out, out_bufs)) != 0)
        rc = set_err(err, errlen, RC_RUN, "LiteRT failed to run the model: %s (%d)%s", status_name(s), s,
                     g_unwritten ? " (an output of the previous run was never written: see the error before)" : "");
    for (int i = 0; i < n_out && !rc; i++)
        if (unwritten_output(&outputs[i])) {
            g_unwritten = true;
            rc = set_err(err, errlen, RC_RUN,
                         "LiteRT's C API did not write output '%s': its shape is computed at run time (e.g. a RESHAPE "
                         "whose shape comes from the batch: Keras Reshape/Flatten last), and LiteRT 2.3's CompiledModel "
                         "keeps such a tensor in its own memory (upstream LiteRT PR #8667, unmerged). The Python "
                         "binding (Interpreter) reads it; export with a fixed batch size to run it here",
                         g_info->outputs[i].name);
        }
    for (int i = 0; i < MAX_TENSORS; i++) {
        if (in_bufs[i]) L.DestroyTensorBuffer(in_bufs[i]);
        if (out_bufs[i]) L.DestroyTensorBuffer(out_bufs[i]);
    }
    return rc;
}

static void litert_close(void) {
    if (g_compiled) L.DestroyCompiledModel(g_compiled);
    if (g_options) L.DestroyOptions(g_options);
    if (g_model) L.DestroyModel(g_model);
    if (g_env) L.DestroyEnvironment(g_env);
    g_compiled = NULL;
    g_options = NULL;
    g_model = NULL;
    g_env = NULL;
    /* the library stays loaded: unloading C++ runtimes at exit gains nothing */
}

int main(int argc, char **argv) {
    static const Backend backend = {
        .runtime = "LiteRT",
        .lib_name = "libLiteRt.so",
        .install = "pip install ai-edge-litert; the file is ai_edge_litert/libLiteRt.so in its site-packages",
        .lib_env = "EDGEFM_LITERT_LIB",
        .open = litert_open,
        .run = litert_run,
        .close = litert_close,
    };
    return runner_main(argc, argv, &backend);
}
