// libkiln_torch_backend.so: runs TorchScript modules through libtorch behind
// the C interface of kiln_torch_abi.h. It knows nothing of the server: the
// naming conventions, config checks and batching live in
// src/server/torch_backend.cc.
#include <ATen/Parallel.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/script.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kiln_torch_abi.h"

struct KilnTorchModule {
  torch::jit::Module module;
  std::vector<std::string> arg_names;
  std::vector<int32_t> arg_kinds;
  bool dict_input = false;
  bool optimized = true;
  bool inference_mode = true;
};

struct KilnTorchResult {
  // One entry per output: a contiguous tensor, or the strings of a List[str].
  struct Output {
    std::optional<at::Tensor> tensor;
    std::vector<std::string> strings;
    std::vector<KilnTorchString> string_views;
    std::vector<int64_t> dims;
  };
  std::vector<Output> outputs;
};

namespace {

char* error(const std::string& message) {
  char* out = static_cast<char*>(std::malloc(message.size() + 1));
  if (out != nullptr) std::memcpy(out, message.c_str(), message.size() + 1);
  return out;
}

// Runs `body`, turning any exception into an error message (libtorch throws
// c10::Error, whose what() appends a C++ backtrace nobody wants in a reply).
template <class F>
char* guarded(const char* what, F&& body) {
  try {
    body();
    return nullptr;
  } catch (const c10::Error& e) {
    return error(std::string(what) + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return error(std::string(what) + ": " + e.what());
  } catch (...) {
    return error(std::string(what) + ": unknown exception");
  }
}

std::optional<at::ScalarType> scalar_type(int32_t dtype) {
  switch (dtype) {
    case KILN_TORCH_FLOAT:
      return at::kFloat;
    case KILN_TORCH_UINT8:
      return at::kByte;
    case KILN_TORCH_INT8:
      return at::kChar;
    case KILN_TORCH_INT16:
      return at::kShort;
    case KILN_TORCH_INT32:
      return at::kInt;
    case KILN_TORCH_INT64:
      return at::kLong;
    case KILN_TORCH_BOOL:
      return at::kBool;
    case KILN_TORCH_FLOAT16:
      return at::kHalf;
    case KILN_TORCH_DOUBLE:
      return at::kDouble;
    case KILN_TORCH_BFLOAT16:
      return at::kBFloat16;
    default:
      return std::nullopt;
  }
}

int32_t abi_dtype(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return KILN_TORCH_FLOAT;
    case at::kByte:
      return KILN_TORCH_UINT8;
    case at::kChar:
      return KILN_TORCH_INT8;
    case at::kShort:
      return KILN_TORCH_INT16;
    case at::kInt:
      return KILN_TORCH_INT32;
    case at::kLong:
      return KILN_TORCH_INT64;
    case at::kBool:
      return KILN_TORCH_BOOL;
    case at::kHalf:
      return KILN_TORCH_FLOAT16;
    case at::kDouble:
      return KILN_TORCH_DOUBLE;
    case at::kBFloat16:
      return KILN_TORCH_BFLOAT16;
    default:
      return 0;
  }
}

int64_t numel(const KilnTorchTensor& t) {
  int64_t n = 1;
  for (int32_t i = 0; i < t.rank; ++i) n *= t.dims[i];
  return n;
}

// An input as forward() takes it: a tensor (a copy, so that an in-place op in
// the model cannot write into the request) or a List[str].
c10::IValue to_ivalue(const KilnTorchTensor& t) {
  const int64_t n = numel(t);
  if (t.dtype == KILN_TORCH_STRING) {
    c10::List<std::string> list;
    list.reserve(static_cast<size_t>(n));
    const auto* s = static_cast<const KilnTorchString*>(t.data);
    for (int64_t i = 0; i < n; ++i) list.push_back(std::string(s[i].data, s[i].size));
    return list;
  }
  std::optional<at::ScalarType> type = scalar_type(t.dtype);
  if (!type)
    throw std::invalid_argument("input '" + std::string(t.name ? t.name : "") + "' has a data type PyTorch lacks");
  std::vector<int64_t> dims(t.dims, t.dims + t.rank);
  at::Tensor out = torch::empty(dims, torch::TensorOptions().dtype(*type));
  if (n > 0) std::memcpy(out.data_ptr(), t.data, static_cast<size_t>(out.nbytes()));
  return out;
}

void add_output(KilnTorchResult& result, const c10::IValue& value, int depth) {
  KilnTorchResult::Output out;
  if (value.isTensor()) {
    at::Tensor t = value.toTensor();
    if (!t.device().is_cpu()) t = t.to(torch::kCPU);
    if (abi_dtype(t.scalar_type()) == 0) {
      throw std::invalid_argument(std::string("an output is a ") + c10::toString(t.scalar_type()) +
                                  " tensor, which the server cannot return");
    }
    out.tensor = t.contiguous();
    out.dims = out.tensor->sizes().vec();
  } else if (value.isList() && value.toListRef().empty()) {
    out.dims = {0};  // an empty List[str]
  } else if (value.isList() && value.toListRef().front().isString()) {
    for (const c10::IValue& s : value.toListRef()) {
      if (!s.isString()) throw std::invalid_argument("a List output mixes strings with other values");
      out.strings.push_back(s.toStringRef());
    }
    out.dims = {static_cast<int64_t>(out.strings.size())};
  } else if (depth == 0 && (value.isTuple() || value.isList())) {
    const std::vector<c10::IValue> items =
        value.isTuple() ? value.toTupleRef().elements().vec() : value.toListRef().vec();
    for (const c10::IValue& item : items) add_output(result, item, 1);
    return;
  } else {
    throw std::invalid_argument("forward() returned a " + value.type()->str() +
                                "; the server takes a Tensor, a List[str], or a tuple or list of them");
  }
  result.outputs.push_back(std::move(out));
}

}  // namespace

extern "C" {

int32_t kiln_torch_abi_version(void) { return KILN_TORCH_ABI_VERSION; }

void kiln_torch_free_error(char* e) { std::free(e); }

char* kiln_torch_set_threads(int32_t intra_op, int32_t inter_op) {
  return guarded("setting PyTorch's thread counts", [&] {
    if (intra_op > 0) at::set_num_threads(intra_op);
    if (inter_op > 0 && at::get_num_interop_threads() != inter_op) at::set_num_interop_threads(inter_op);
  });
}

char* kiln_torch_load(const char* path, int32_t optimized, int32_t inference_mode, KilnTorchModule** module) {
  *module = nullptr;
  auto m = std::make_unique<KilnTorchModule>();
  char* e = guarded("loading the TorchScript model", [&] {
    m->module = torch::jit::load(path, torch::kCPU);
    m->module.eval();
    const auto& arguments = m->module.get_method("forward").function().getSchema().arguments();
    size_t first = 0;
    if (!arguments.empty() && arguments[0].type()->kind() == c10::TypeKind::ClassType) first = 1;  // self
    for (size_t i = first; i < arguments.size(); ++i) {
      m->arg_names.push_back(arguments[i].name());
      switch (arguments[i].type()->kind()) {
        case c10::TypeKind::TensorType:
          m->arg_kinds.push_back(KILN_TORCH_ARG_TENSOR);
          break;
        case c10::TypeKind::ListType:
          m->arg_kinds.push_back(KILN_TORCH_ARG_LIST);
          break;
        case c10::TypeKind::DictType:
          m->arg_kinds.push_back(KILN_TORCH_ARG_DICT);
          break;
        default:
          m->arg_kinds.push_back(KILN_TORCH_ARG_OTHER);
          break;
      }
    }
    m->dict_input = m->arg_kinds.size() == 1 && m->arg_kinds[0] == KILN_TORCH_ARG_DICT;
  });
  if (e != nullptr) return e;
  m->optimized = optimized != 0;
  m->inference_mode = inference_mode != 0;
  *module = m.release();
  return nullptr;
}

void kiln_torch_unload(KilnTorchModule* module) { delete module; }

int32_t kiln_torch_arg_count(const KilnTorchModule* module) { return static_cast<int32_t>(module->arg_names.size()); }

const char* kiln_torch_arg_name(const KilnTorchModule* module, int32_t index) {
  return module->arg_names[static_cast<size_t>(index)].c_str();
}

int32_t kiln_torch_arg_kind(const KilnTorchModule* module, int32_t index) {
  return module->arg_kinds[static_cast<size_t>(index)];
}

char* kiln_torch_forward(KilnTorchModule* module, const KilnTorchTensor* inputs, int32_t count,
                         KilnTorchResult** result) {
  *result = nullptr;
  auto r = std::make_unique<KilnTorchResult>();
  char* e = guarded("running forward()", [&] {
    torch::jit::GraphOptimizerEnabledGuard optimizer(module->optimized);
    std::optional<c10::InferenceMode> inference;
    std::optional<torch::NoGradGuard> no_grad;
    if (module->inference_mode) {
      inference.emplace();
    } else {
      no_grad.emplace();
    }
    std::vector<c10::IValue> args;
    if (module->dict_input) {
      c10::Dict<std::string, at::Tensor> dict;
      for (int32_t i = 0; i < count; ++i) {
        c10::IValue v = to_ivalue(inputs[i]);
        if (!v.isTensor()) throw std::invalid_argument("a Dict[str, Tensor] input takes tensors only");
        dict.insert(inputs[i].name, v.toTensor());
      }
      args.emplace_back(dict);
    } else {
      for (int32_t i = 0; i < count; ++i) args.push_back(to_ivalue(inputs[i]));
    }
    c10::IValue out = module->module.forward(std::move(args));
    add_output(*r, out, 0);
  });
  if (e != nullptr) return e;
  *result = r.release();
  return nullptr;
}

int32_t kiln_torch_result_count(const KilnTorchResult* result) { return static_cast<int32_t>(result->outputs.size()); }

char* kiln_torch_result_output(KilnTorchResult* result, int32_t index, KilnTorchTensor* view) {
  if (index < 0 || static_cast<size_t>(index) >= result->outputs.size()) return error("output index out of range");
  KilnTorchResult::Output& out = result->outputs[static_cast<size_t>(index)];
  view->name = nullptr;
  view->rank = static_cast<int32_t>(out.dims.size());
  view->dims = out.dims.data();
  if (out.tensor) {
    view->dtype = abi_dtype(out.tensor->scalar_type());
    view->data = out.tensor->data_ptr();
    return nullptr;
  }
  out.string_views.clear();
  for (const std::string& s : out.strings) out.string_views.push_back({s.data(), s.size()});
  view->dtype = KILN_TORCH_STRING;
  view->data = out.string_views.data();
  return nullptr;
}

void kiln_torch_result_free(KilnTorchResult* result) { delete result; }

}  // extern "C"
