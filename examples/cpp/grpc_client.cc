// Queries the `simple` model of `kiln serve` (or Triton) over GRPC with the
// kiln::client library:
//   kiln serve --model-repository examples/model_repository &
//   build/examples/cpp/grpc_client [-u localhost:8001] [-m simple]
#include "simple_example.h"

int main(int argc, char** argv) { return kiln_examples::simple_example_main(argc, argv, "grpc", "localhost:8001"); }
