// The C interface between the server and its PyTorch (TorchScript) plugin,
// libkiln_torch_backend.so. The plugin is the only code that includes
// libtorch; the server dlopens it the first time a model with platform
// "pytorch_libtorch" (or backend "pytorch") loads, so a kiln built or run
// without Debian's libtorch still serves everything else, and libtorch's
// ~200 MB of libraries are only mapped by servers that use them.
//
// Plain C types only: the plugin is built with libtorch's flags and may be
// a different build of the C++ library than the server. Every function that
// can fail returns an error message (owned by the caller, released with
// kiln_torch_free_error) or NULL on success; no C++ exception crosses this
// boundary.
#ifndef KILN_TORCH_ABI_H_
#define KILN_TORCH_ABI_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Bumped when any declaration below changes; the server refuses a plugin
// whose kiln_torch_abi_version() differs.
#define KILN_TORCH_ABI_VERSION 1

// The plugin is built with hidden visibility; these are its only exports.
#define KILN_TORCH_API __attribute__((visibility("default")))

// Element types, numbered as ONNX's TensorProto.DataType (and kiln::DataType).
enum KilnTorchDtype {
  KILN_TORCH_FLOAT = 1,
  KILN_TORCH_UINT8 = 2,
  KILN_TORCH_INT8 = 3,
  KILN_TORCH_INT16 = 5,
  KILN_TORCH_INT32 = 6,
  KILN_TORCH_INT64 = 7,
  KILN_TORCH_STRING = 8,  // a List[str]: data is an array of KilnTorchString
  KILN_TORCH_BOOL = 9,
  KILN_TORCH_FLOAT16 = 10,
  KILN_TORCH_DOUBLE = 11,
  KILN_TORCH_BFLOAT16 = 16,
};

// How forward() takes an argument.
enum KilnTorchArgKind {
  KILN_TORCH_ARG_TENSOR = 0,
  KILN_TORCH_ARG_LIST = 1,   // List[...] (Triton feeds strings as List[str])
  KILN_TORCH_ARG_DICT = 2,   // Dict[str, Tensor]: every input by its name
  KILN_TORCH_ARG_OTHER = 3,  // anything else (an int, an Optional, ...): not servable
};

typedef struct KilnTorchString {
  const char* data;
  size_t size;
} KilnTorchString;

// A tensor crossing the boundary: dense, row-major, on the CPU. Inputs are
// borrowed from the server for the call; output views are owned by the
// KilnTorchResult they came from.
typedef struct KilnTorchTensor {
  const char* name;  // inputs: the config name (the key of a Dict input); outputs: NULL
  int32_t dtype;     // KilnTorchDtype
  int32_t rank;
  const int64_t* dims;
  const void* data;  // numel elements (KilnTorchString for KILN_TORCH_STRING)
} KilnTorchTensor;

typedef struct KilnTorchModule KilnTorchModule;
typedef struct KilnTorchResult KilnTorchResult;

KILN_TORCH_API int32_t kiln_torch_abi_version(void);
KILN_TORCH_API void kiln_torch_free_error(char* error);

// Sets libtorch's process-wide intra-op (and, before the first run,
// inter-op) thread counts; a count <= 0 leaves that one as it is.
KILN_TORCH_API char* kiln_torch_set_threads(int32_t intra_op, int32_t inter_op);

// Loads a TorchScript file (torch.jit.save) onto the CPU, in eval mode.
// `optimized` = 0 runs forward() without the graph executor's
// optimizations (Triton's DISABLE_OPTIMIZED_EXECUTION); `inference_mode` =
// 1 runs it under c10::InferenceMode.
KILN_TORCH_API char* kiln_torch_load(const char* path, int32_t optimized, int32_t inference_mode,
                                     KilnTorchModule** module);
KILN_TORCH_API void kiln_torch_unload(KilnTorchModule* module);

// forward()'s arguments after `self`, in order. The name is owned by the module.
KILN_TORCH_API int32_t kiln_torch_arg_count(const KilnTorchModule* module);
KILN_TORCH_API const char* kiln_torch_arg_name(const KilnTorchModule* module, int32_t index);
KILN_TORCH_API int32_t kiln_torch_arg_kind(const KilnTorchModule* module, int32_t index);

// Runs forward(). With a Dict[str, Tensor] argument, the inputs go in by
// name; otherwise inputs[i] is argument i. The outputs are the returned
// value flattened one level: a Tensor or a List[str] gives one, a tuple or
// list gives one per element. Not thread-safe per module (the server runs one
// request at a time on each instance, and each instance loads its own module).
KILN_TORCH_API char* kiln_torch_forward(KilnTorchModule* module, const KilnTorchTensor* inputs, int32_t count,
                                        KilnTorchResult** result);
KILN_TORCH_API int32_t kiln_torch_result_count(const KilnTorchResult* result);
// A view of output `index` (contiguous, on the CPU), valid until the result is freed.
KILN_TORCH_API char* kiln_torch_result_output(KilnTorchResult* result, int32_t index, KilnTorchTensor* view);
KILN_TORCH_API void kiln_torch_result_free(KilnTorchResult* result);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // KILN_TORCH_ABI_H_
