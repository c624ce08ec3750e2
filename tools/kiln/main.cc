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

// oneDNN's tactics run on libgomp, whose idle workers spin for milliseconds
// after each parallel region (OMP_WAIT_POLICY unset) and so take a core from
// the Kiln thread pool running the next layer, or from another model
// instance of `kiln serve`. libgomp reads the variable once, when it loads,
// before main (and before libc has its environment, so an executable's
// preinit hook cannot set it either): without it, kiln sets it and executes
// itself again. An explicit OMP_WAIT_POLICY in the environment wins.
namespace {
void ensure_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  if (setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/0) != 0) return;
  execv("/proc/self/exe", argv);  // returns only on failure: run on with libgomp's default
}
}  // namespace

#ifndef KILN_VERSION
#define KILN_VERSION "0.0.0"
#endif

int main(int argc, char** argv) {
  ensure_passive_openmp(argv);
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
