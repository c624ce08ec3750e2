// kiln: the command-line tool. (Subcommands land with their features.)
#include <cstdio>

int main(int argc, char** argv) {
  std::fprintf(stderr, "usage: kiln <run|inspect> ...\n");
  return argc > 1 ? 2 : 0;
}
