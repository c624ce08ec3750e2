// Queries the `simple` model of `kiln serve` (or Triton) over HTTP with the
// kiln::client library:
//   kiln serve --model-repository examples/model_repository &
//   build/examples/cpp/http_client [-u localhost:8000] [-m simple]
#include "simple_example.h"

int main(int argc, char** argv) { return kiln_examples::simple_example_main(argc, argv, "http", "localhost:8000"); }
