// kiln_consumer: opens a model with kiln::Session, feeds every float input a
// ramp of values (dynamic dims taken as 1), runs it and prints each output's
// shape and first values. Exit status 0 on success, 1 on any error.
#include <kiln/session.h>
#include <kiln/version.h>

#include <algorithm>
#include <cstdio>
#include <string>

namespace {

int fail(const std::string& what, const kiln::Status& status) {
  std::fprintf(stderr, "kiln_consumer: %s: %s\n", what.c_str(), status.message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: kiln_consumer MODEL.onnx|MODEL.plan\n");
    return 1;
  }
  std::printf("Kiln %s\n", KILN_VERSION_STRING);
  auto session = kiln::Session::open(argv[1]);
  if (!session.is_ok()) return fail(argv[1], session.status());

  kiln::NamedTensors feeds;
  for (const kiln::IoInfo& input : (*session)->inputs()) {
    if (input.kind != kiln::IoKind::kTensor || input.dtype != kiln::DataType::kFloat32) {
      std::fprintf(stderr, "kiln_consumer: input '%s' is a %s; this example feeds float tensors only\n",
                   input.name.c_str(), input.type.c_str());
      return 1;
    }
    kiln::Dims dims;
    for (int64_t d : input.dims) dims.push_back(d < 0 ? 1 : d);
    auto tensor = kiln::Tensor::allocate(input.dtype, dims);
    if (!tensor.is_ok()) return fail(input.name, tensor.status());
    float* data = tensor->data<float>();
    for (int64_t i = 0; i < tensor->numel(); ++i) data[i] = static_cast<float>(i % 7) * 0.25f - 0.5f;
    feeds.emplace_back(input.name, std::move(*tensor));
  }

  auto outputs = (*session)->run(feeds);
  if (!outputs.is_ok()) return fail("run", outputs.status());
  for (const auto& [name, tensor] : *outputs) {
    std::printf("%s: %s", name.c_str(), tensor.debug_string().c_str());
    if (tensor.dtype() == kiln::DataType::kFloat32) {
      int64_t shown = std::min<int64_t>(tensor.numel(), 4);
      for (int64_t i = 0; i < shown; ++i) std::printf(" %.6g", static_cast<double>(tensor.data<float>()[i]));
    }
    std::printf("\n");
  }
  return 0;
}
