// Writes the TorchScript models of tests/python/test_server_torch_backend.py
// into a folder: each is a torch::jit::Module whose forward() is TorchScript
// source compiled here and saved with Module::save, so the files are what
// torch.jit.save writes from Python (libtorch reads both the same way).
//
//   kiln_torch_test_models OUT_DIR
//
// Writes OUT_DIR/<name>.pt for every model below; the test copies them into
// model repositories.
#include <torch/script.h>

#include <cstdio>
#include <filesystem>
#include <string>

namespace {

torch::jit::Module scripted(const std::string& name, const std::string& source) {
  torch::jit::Module m(name);
  m.define(source);
  return m;
}

void save(torch::jit::Module& m, const std::filesystem::path& dir, const std::string& name) {
  m.save((dir / (name + ".pt")).string());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path dir(argv[1]);
  std::filesystem::create_directories(dir);
  try {
    // Two inputs by forward() argument name, two outputs in a tuple.
    auto add_sub = scripted("AddSub", R"(
def forward(self, INPUT0, INPUT1):
    return INPUT0 + INPUT1, INPUT0 - INPUT1
)");
    save(add_sub, dir, "add_sub");

    // A linear layer with a parameter: relu(x @ W + b), x [batch, 4] -> [batch, 3].
    torch::jit::Module linear("Linear");
    linear.register_parameter(
        "weight",
        torch::tensor({1.0f, -1.0f, 0.5f, 0.5f, 2.0f, -1.0f, -1.0f, 0.5f, 1.5f, 2.0f, 0.0f, -0.5f}).reshape({4, 3}),
        false);
    linear.register_parameter("bias", torch::tensor({0.1f, -0.2f, 0.3f}), false);
    linear.define(R"(
def forward(self, x):
    return torch.relu(torch.matmul(x, self.weight) + self.bias)
)");
    save(linear, dir, "linear");

    // One Dict[str, Tensor] argument: every input under its config name.
    auto dict_in = scripted("DictIn", R"(
def forward(self, inputs: Dict[str, Tensor]):
    return inputs["a"] * inputs["b"] + inputs["c"]
)");
    save(dict_in, dir, "dict_in");

    // Strings: List[str] in, List[str] and a tensor out.
    auto strings = scripted("Strings", R"(
def forward(self, words: List[str]):
    out: List[str] = []
    lengths: List[int] = []
    for w in words:
        out.append(w.upper())
        lengths.append(len(w))
    return out, torch.tensor(lengths)
)");
    save(strings, dir, "strings");

    // Raises on a negative sum: a model error, not a crash.
    auto raises = scripted("Raises", R"(
def forward(self, x):
    assert bool(x.sum() >= 0), "negative input"
    return x * 2.0
)");
    save(raises, dir, "raises");

    // Integer and boolean types: (x * 3 as int64, x > 0).
    auto types = scripted("Types", R"(
def forward(self, x):
    return (x * 3).long(), x > 0
)");
    save(types, dir, "types");

    // A forward() taking an int: not servable.
    auto takes_int = scripted("TakesInt", R"(
def forward(self, x, n: int):
    return x * n
)");
    save(takes_int, dir, "takes_int");

    // Writes into its input in place (the server's request data must not change).
    auto in_place = scripted("InPlace", R"(
def forward(self, x):
    x.mul_(10.0)
    return x + 1.0
)");
    save(in_place, dir, "in_place");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_torch_models: %s\n", e.what());
    return 1;
  }
  return 0;
}
