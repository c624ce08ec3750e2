// Queries the `simple` model of `kiln serve` (or Triton) over GRPC with the
// kiln::client library:
//   kiln serve --model-repository examples/model_repository &
//   build/examples/cpp/grpc_client [-u localhost:8001] [-m simple]
#include <cstdio>
#include <cstring>
#include <string>

#include "simple_example.h"

int main(int argc, char** argv) {
  std::string url = "localhost:8001";
  std::string model = "simple";
  for (int i = 1; i < argc; ++i) {
    if (i + 1 < argc && std::strcmp(argv[i], "-u") == 0) {
      url = argv[++i];
    } else if (i + 1 < argc && std::strcmp(argv[i], "-m") == 0) {
      model = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [-u host:port] [-m model]\n", argv[0]);
      return 2;
    }
  }
  return kiln_examples::run_simple_example("grpc", url, model);
}
