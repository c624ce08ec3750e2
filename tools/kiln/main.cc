// kiln: the command-line tool. `kiln run` runs a model on .npy inputs;
// `kiln inspect` describes a model or plan; `kiln build` makes a plan;
// `kiln bench` times a model or plan;
// `kiln serve` serves a model repository. Exit status: 0 success, 1 an error while
// running a command, 2 a usage error.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include <unistd.h>

#include "commands.h"

// oneDNN's tactics run on libgomp. Its idle workers wait for the next
// parallel region in one of two ways: spin for ~3 ms (the default), which
// takes a core from the Kiln thread pool running the next layer or from
// another model instance of `kiln serve`; or sleep at once (PASSIVE), which
// costs a wake-up per oneDNN layer, tens of microseconds on a VM (mobilenetv2
// at batch 1: 55 layers, 7.4 ms with PASSIVE, 4.4-5.1 ms with a short spin).
// So: ACTIVE with a spin count of 10000 (a few hundred microseconds at most,
// then sleep; libgomp caps it at 1000 when it has more threads than CPUs).
// libgomp reads the variables once, when it loads, before main (and before
// libc has its environment, so an executable's preinit hook cannot set them
// either): without them, kiln sets them and executes itself again. An
// explicit OMP_WAIT_POLICY or GOMP_SPINCOUNT in the environment wins.
namespace {
void ensure_openmp_wait_policy(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr) return;
  if (setenv("OMP_WAIT_POLICY", "ACTIVE", /*overwrite=*/0) != 0) return;
  if (setenv("GOMP_SPINCOUNT", "10000", /*overwrite=*/0) != 0) return;
  execv("/proc/self/exe", argv);  // returns only on failure: run on with libgomp's default
}
}  // namespace

#ifndef KILN_VERSION
#define KILN_VERSION "0.0.0"
#endif

int main(int argc, char** argv) {
  ensure_openmp_wait_policy(argv);
  CLI::App app{"kiln: load, inspect and run ONNX models with the Kiln inference engine", "kiln"};
  app.set_version_flag("--version", std::string("kiln ") + KILN_VERSION);
  app.require_subcommand(1);
  app.footer("Run 'kiln <command> --help' for the options of a command.");
  int exit_code = 0;
  kiln::cli::add_output_flags(app);
  kiln::cli::add_run_command(app, &exit_code);
  kiln::cli::add_inspect_command(app, &exit_code);
  kiln::cli::add_ops_command(app, &exit_code);
  kiln::cli::add_build_command(app, &exit_code);
  kiln::cli::add_bench_command(app, &exit_code);
  kiln::cli::add_serve_command(app, &exit_code);
  kiln::cli::add_train_command(app, &exit_code);
  kiln::cli::add_perf_command(app, &exit_code);
  kiln::cli::add_quantize_command(app, &exit_code);
  kiln::cli::add_accuracy_command(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);  // prints the message and a hint on stderr
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln: internal error: %s\n", e.what());
    return 1;
  }
  return exit_code;
}
